//! The Parquet reader's pages, checked as it reads them: a dictionary page that announces
//! more values than its bytes can hold is refused before the reader sizes a dictionary from
//! that count (found by fuzzing: a 587-byte file announcing 654 million values made it ask
//! for 5.2 GB). Only the pages the record reader asks for are read, as they would be anyway.

use parquet::basic::Type as PhysicalType;
use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::record::reader::RowIter;
use parquet::schema::types::Type as SchemaType;

/// A file reader whose row groups' pages are [`Checked`].
pub(super) struct CheckedFile<'a>(pub &'a dyn FileReader);

impl FileReader for CheckedFile<'_> {
    fn metadata(&self) -> &ParquetMetaData {
        self.0.metadata()
    }

    fn num_row_groups(&self) -> usize {
        self.0.num_row_groups()
    }

    fn get_row_group(&self, i: usize) -> Result<Box<dyn RowGroupReader + '_>> {
        Ok(Box::new(CheckedGroup {
            inner: self.0.get_row_group(i)?,
            index: i,
        }))
    }

    fn get_row_iter(&self, projection: Option<SchemaType>) -> Result<RowIter<'_>> {
        RowIter::from_file(projection, self)
    }
}

struct CheckedGroup<'a> {
    inner: Box<dyn RowGroupReader + 'a>,
    index: usize,
}

impl RowGroupReader for CheckedGroup<'_> {
    fn metadata(&self) -> &RowGroupMetaData {
        self.inner.metadata()
    }

    fn num_columns(&self) -> usize {
        self.inner.num_columns()
    }

    fn get_column_page_reader(&self, i: usize) -> Result<Box<dyn PageReader>> {
        let column = self.inner.metadata().column(i);
        let descr = column.column_descr();
        Ok(Box::new(Checked {
            inner: self.inner.get_column_page_reader(i)?,
            bits: plain_value_bits(descr.physical_type(), descr.type_length()),
            physical: descr.physical_type(),
            column: column.column_path().string(),
            group: self.index + 1,
        }))
    }

    fn get_column_bloom_filter(&self, i: usize) -> Option<&parquet::bloom_filter::Sbbf> {
        self.inner.get_column_bloom_filter(i)
    }

    fn get_row_iter(&self, projection: Option<SchemaType>) -> Result<RowIter<'_>> {
        RowIter::from_row_group(projection, self)
    }
}

/// One column chunk's pages, each dictionary page checked against its bytes.
struct Checked {
    inner: Box<dyn PageReader>,
    /// The fewest bits one PLAIN-encoded value of the column takes.
    bits: u64,
    physical: PhysicalType,
    column: String,
    group: usize,
}

impl Checked {
    fn check(&self, page: Option<Page>) -> Result<Option<Page>> {
        if let Some(Page::DictionaryPage {
            buf, num_values, ..
        }) = &page
        {
            let fit = (buf.len() as u64 * 8) / self.bits;
            if u64::from(*num_values) > fit {
                return Err(ParquetError::General(format!(
                    "the file is damaged: the dictionary page of column \"{}\" in row group {} announces {num_values} values in {} bytes, which hold at most {fit} {} values",
                    self.column,
                    self.group,
                    buf.len(),
                    self.physical
                )));
            }
        }
        Ok(page)
    }
}

impl PageReader for Checked {
    fn get_next_page(&mut self) -> Result<Option<Page>> {
        let page = self.inner.get_next_page()?;
        self.check(page)
    }

    fn peek_next_page(&mut self) -> Result<Option<PageMetadata>> {
        self.inner.peek_next_page()
    }

    fn skip_next_page(&mut self) -> Result<()> {
        self.inner.skip_next_page()
    }

    fn supports_deferred_dictionary(&self) -> bool {
        self.inner.supports_deferred_dictionary()
    }

    fn take_deferred_dictionary(&mut self) -> Result<Option<Page>> {
        let page = self.inner.take_deferred_dictionary()?;
        self.check(page)
    }

    fn at_record_boundary(&mut self) -> Result<bool> {
        self.inner.at_record_boundary()
    }
}

impl Iterator for Checked {
    type Item = Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

/// The fewest bits one PLAIN-encoded value of this type takes (a byte array: its 4-byte length).
fn plain_value_bits(physical: PhysicalType, type_length: i32) -> u64 {
    match physical {
        PhysicalType::BOOLEAN => 1,
        PhysicalType::INT32 | PhysicalType::FLOAT | PhysicalType::BYTE_ARRAY => 32,
        PhysicalType::INT64 | PhysicalType::DOUBLE => 64,
        PhysicalType::INT96 => 96,
        PhysicalType::FIXED_LEN_BYTE_ARRAY => u64::try_from(type_length).unwrap_or(0).max(1) * 8,
    }
}
