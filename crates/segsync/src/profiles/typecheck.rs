//! Warnings about a segment predicate that SQL accepts but that does not mean what it says:
//! a text column compared with a number (`"Lifetime value" > 500` over a column imported as
//! text compares text, so `'87,14' > '500'` holds).

use super::error::quoted;
use super::infer::ColumnType;
use super::Column;

/// One warning per comparison of a text column with a number in `predicate` (the predicate
/// is read as SQL tokens: strings and comments are skipped, identifiers may be quoted).
pub fn comparison_warnings(predicate: &str, columns: &[Column]) -> Vec<String> {
    let tokens = tokens(predicate);
    let text_column = |t: &Token| match t {
        Token::Ident(name) => columns
            .iter()
            .find(|c| c.kind == ColumnType::Text && c.name.eq_ignore_ascii_case(name)),
        _ => None,
    };
    let mut warnings = Vec::new();
    for (i, window) in tokens.windows(3).enumerate() {
        let (column, number) = match window {
            [left, Token::Compare(_), Token::Number(n)] => (text_column(left), n),
            [Token::Number(n), Token::Compare(_), right] => (text_column(right), n),
            [left, Token::Word(w), Token::Number(n)] if w.eq_ignore_ascii_case("between") => {
                (text_column(left), n)
            }
            _ => continue,
        };
        // `x > -5`: the sign is its own token; `a - 1 > b` is not a comparison of a column.
        let previous = i.checked_sub(1).map(|j| &tokens[j]);
        if matches!(
            previous,
            Some(Token::Other('-' | '+' | '*' | '/' | '%' | '|'))
        ) {
            continue;
        }
        let Some(column) = column else { continue };
        let comparison = window.iter().map(Token::text).collect::<Vec<_>>().join(" ");
        let warning = format!(
            "column {} holds text, so {comparison} compares text, not numbers ('87,14' > '500' holds, as do '9' > '10' and 'x' > '5'): import the file again with its number format (a decimal comma?) so that the column holds numbers, or compare CAST({} AS REAL) with {number}",
            quoted(&column.name),
            super::quote_ident(&column.name),
        );
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    warnings
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A column name, as written (quotes removed).
    Ident(String),
    /// A bare word that is an SQL keyword (`AND`, `BETWEEN`, ...).
    Word(String),
    Number(String),
    String,
    Compare(&'static str),
    Other(char),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Ident(name) => super::quote_ident(name),
            Token::Word(w) => w.to_ascii_uppercase(),
            Token::Number(n) => n.clone(),
            Token::String => "'…'".to_string(),
            Token::Compare(op) => op.to_string(),
            Token::Other(c) => c.to_string(),
        }
    }
}

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "between", "in", "is", "null", "like", "glob", "case", "when", "then",
    "else", "end", "cast", "as", "escape", "true", "false", "exists", "collate",
];

fn tokens(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let quoted_until = |i: usize, q: char| {
        let mut j = i + 1;
        let mut text = String::new();
        while j < chars.len() {
            if chars[j] == q {
                if chars.get(j + 1) == Some(&q) {
                    text.push(q);
                    j += 2;
                    continue;
                }
                return (text, j + 1);
            }
            text.push(chars[j]);
            j += 1;
        }
        (text, j)
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            '\'' => {
                i = quoted_until(i, '\'').1;
                out.push(Token::String);
            }
            '"' | '`' => {
                let (name, next) = quoted_until(i, c);
                out.push(Token::Ident(name));
                i = next;
            }
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .map_or(chars.len(), |p| i + p);
                out.push(Token::Ident(chars[i + 1..end].iter().collect()));
                i = end + 1;
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                out.push(Token::Number(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                    out.push(Token::Word(word));
                } else {
                    out.push(Token::Ident(word));
                }
            }
            '<' | '>' | '=' | '!' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = ["<=", ">=", "==", "!=", "<>"]
                    .into_iter()
                    .find(|op| two == *op);
                match op {
                    Some(op) => {
                        out.push(Token::Compare(op));
                        i += 2;
                    }
                    None => {
                        out.push(match c {
                            '<' => Token::Compare("<"),
                            '>' => Token::Compare(">"),
                            '=' => Token::Compare("="),
                            _ => Token::Other(c),
                        });
                        i += 1;
                    }
                }
            }
            c => {
                out.push(Token::Other(c));
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<Column> {
        [
            ("Lifetime value", ColumnType::Text),
            ("ltv", ColumnType::Real),
            ("city", ColumnType::Text),
        ]
        .into_iter()
        .map(|(n, k)| Column {
            name: n.to_string(),
            kind: k,
        })
        .collect()
    }

    #[test]
    fn warns_about_text_compared_with_numbers() {
        let w = comparison_warnings("\"Lifetime value\" > 500", &columns());
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with(
                "column \"Lifetime value\" holds text, so \"Lifetime value\" > 500 compares text"
            ),
            "{}",
            w[0]
        );
        for p in [
            "500 <= [lifetime value]",
            "`Lifetime value` BETWEEN 1 AND 2",
            "city = 5 OR ltv > 3",
            "CITY<>1.5e3",
        ] {
            assert_eq!(comparison_warnings(p, &columns()).len(), 1, "{p}");
        }
        for p in [
            "ltv > 500",
            "city = '500'",
            "city = 'x' -- \"Lifetime value\" > 500",
            "'\"Lifetime value\" > 500' = city",
            "length(city) > 5",
            "CAST(\"Lifetime value\" AS REAL) > 500",
            "ltv - city > 5",
        ] {
            assert_eq!(
                comparison_warnings(p, &columns()),
                Vec::<String>::new(),
                "{p}"
            );
        }
    }
}
