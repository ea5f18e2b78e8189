//! The Mailchimp type of a merge field segsync creates, chosen from the profile column it is
//! sent from (its name and inferred type) unless the export says otherwise.

use serde::{Deserialize, Serialize};

use crate::mailchimp::MergeFieldType;
use crate::profiles::ColumnType;

/// The types segsync creates merge fields with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MergeType {
    Text,
    Number,
    Date,
    /// Month and day (`MM/DD`), from a date or a month/day column.
    Birthday,
    Phone,
    Zip,
    Url,
}

impl MergeType {
    pub const ALL: [MergeType; 7] = [
        MergeType::Text,
        MergeType::Number,
        MergeType::Date,
        MergeType::Birthday,
        MergeType::Phone,
        MergeType::Zip,
        MergeType::Url,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MergeType::Text => "text",
            MergeType::Number => "number",
            MergeType::Date => "date",
            MergeType::Birthday => "birthday",
            MergeType::Phone => "phone",
            MergeType::Zip => "zip",
            MergeType::Url => "url",
        }
    }

    pub fn parse(s: &str) -> Option<MergeType> {
        MergeType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn mailchimp(self) -> MergeFieldType {
        match self {
            MergeType::Text => MergeFieldType::Text,
            MergeType::Number => MergeFieldType::Number,
            MergeType::Date => MergeFieldType::Date,
            MergeType::Birthday => MergeFieldType::Birthday,
            MergeType::Phone => MergeFieldType::Phone,
            MergeType::Zip => MergeFieldType::Zip,
            MergeType::Url => MergeFieldType::Url,
        }
    }

    /// The display format a new field of this type gets (Mailchimp's default); values are
    /// sent in the form the API documents (`YYYY-MM-DD`, `MM/DD`) whatever it is.
    pub fn date_format(self) -> &'static str {
        match self {
            MergeType::Date => "MM/DD/YYYY",
            MergeType::Birthday => "MM/DD",
            _ => "",
        }
    }
}

/// The type that fits a column: a birthday or phone by its name, else numbers → number,
/// dates → date (or birthday by name), anything else → text.
pub fn suggest(column: &str, kind: Option<ColumnType>) -> MergeType {
    let name: String = column
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let dated = matches!(kind, Some(ColumnType::Date | ColumnType::Timestamp));
    let birthday = [
        "birthday",
        "birthdate",
        "dateofbirth",
        "dob",
        "bday",
        "geburtstag",
    ]
    .iter()
    .any(|b| name.contains(b));
    if birthday && (dated || matches!(kind, Some(ColumnType::Text) | None)) {
        return MergeType::Birthday;
    }
    let phone = ["phone", "mobile", "telephone"]
        .iter()
        .any(|p| name.starts_with(p) || name.ends_with(p))
        || ["tel", "cell", "gsm"].contains(&name.as_str());
    if phone && !matches!(kind, Some(ColumnType::Real | ColumnType::Boolean)) {
        return MergeType::Phone;
    }
    match kind {
        Some(ColumnType::Integer | ColumnType::Real) => MergeType::Number,
        Some(ColumnType::Date | ColumnType::Timestamp) => MergeType::Date,
        _ => MergeType::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_get_the_type_that_fits() {
        use ColumnType as C;
        assert_eq!(suggest("Lifetime value", Some(C::Real)), MergeType::Number);
        assert_eq!(suggest("Joined", Some(C::Date)), MergeType::Date);
        assert_eq!(suggest("Date of birth", Some(C::Date)), MergeType::Birthday);
        assert_eq!(suggest("birthday", Some(C::Text)), MergeType::Birthday);
        assert_eq!(suggest("Phone", Some(C::Text)), MergeType::Phone);
        assert_eq!(suggest("mobile_phone", Some(C::Integer)), MergeType::Phone);
        assert_eq!(suggest("city", Some(C::Text)), MergeType::Text);
        assert_eq!(suggest("hotel", Some(C::Text)), MergeType::Text);
        assert_eq!(suggest("orders", None), MergeType::Text);
    }
}
