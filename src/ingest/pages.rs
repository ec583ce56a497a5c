//! A Parquet file's text columns read from its pages, one row group at a
//! time, each column its decompressed pages and where each value lies.
//!
//! Polars decodes a text column into views: sixteen bytes a value, plus a
//! copy of every value longer than twelve. The fifteen columns of a
//! million debtors were 380 MB of fresh pages that the night read once and
//! dropped; the kernel zeroing them was most of the stage's system time,
//! and the debtors of a Parquet file took longer to check than the same
//! debtors from CSV. Here a column is its pages copied whole into one
//! buffer and eight bytes a value: less than half of that, and no value
//! copied on its own.
//!
//! Only the plainest shape is read this way: flat columns of text
//! (`BYTE_ARRAY` read as text by Polars), pages of plain or dictionary
//! values with or without nulls. Anything else (another type, another
//! encoding, nested columns, a page that does not decode, bytes that are
//! not UTF-8) makes [`PageFile::open`] or [`PageFile::group`] answer
//! `None`, and the caller reads the file through Polars, which then
//! reports whatever is wrong in its own words. A null reads as `""`, as
//! it does from a Polars column (see `SliceTexts`).

use polars::io::parquet::read::infer_schema;
use polars::prelude::ArrowDataType;
use polars_buffer::Buffer;
use polars_parquet::parquet::encoding::hybrid_rle::HybridRleDecoder;
use polars_parquet::parquet::metadata::{ColumnChunkMetadata, FileMetadata};
use polars_parquet::parquet::page::{split_buffer, DataPageHeader, FormatEncoding};
use polars_parquet::parquet::read::{get_page_iterator, read_metadata, BasicDecompressor};
use polars_parquet::parquet::schema::types::PhysicalType;
use rayon::prelude::*;
use std::io::Cursor;
use std::path::Path;

/// A Parquet file whose wanted columns are all flat text.
pub(super) struct PageFile {
    bytes: Buffer<u8>,
    metadata: FileMetadata,
    /// The wanted columns' names, in the order asked; a column the file
    /// does not have reads as `None`.
    wanted: Vec<&'static str>,
    present: Vec<bool>,
}

/// One row group's wanted columns.
pub(super) struct GroupTexts {
    pub cols: Vec<Option<TextColumn>>,
}

/// A column's values in its decompressed pages, and where each one is.
pub(super) struct TextColumn {
    bytes: Vec<u8>,
    /// (start, end) in `bytes`; a null is (0, 0).
    spans: Vec<(u32, u32)>,
}

/// Row groups of more rows than this are read through Polars, which cuts
/// them in slices: a group is held whole here.
const MAX_GROUP: usize = 1 << 22;

impl PageFile {
    /// The file, when every one of `required` is there and every wanted
    /// column it has is flat text; `None` otherwise (and for a file with
    /// no rows, whose checks Polars' reading makes).
    pub fn open(
        path: &Path,
        required: &[&'static str],
        optional: &[&'static str],
    ) -> Option<PageFile> {
        // A damaged footer can make the thrift decoder panic (a field of
        // the wrong type): that file is Polars' to report.
        crate::expected_panic(|| Self::open_unguarded(path, required, optional))
            .ok()
            .flatten()
    }

    fn open_unguarded(
        path: &Path,
        required: &[&'static str],
        optional: &[&'static str],
    ) -> Option<PageFile> {
        // Mapped as the CSV inputs are (read, when small).
        let bytes = Buffer::from_owner(crate::FileBytes::open(path).ok()?);
        let metadata = read_metadata(&mut Cursor::new(bytes.as_slice())).ok()?;
        if metadata.num_rows == 0
            || metadata
                .row_groups
                .iter()
                .map(|g| g.num_rows())
                .sum::<usize>()
                != metadata.num_rows
            || metadata.row_groups.iter().any(|g| g.num_rows() > MAX_GROUP)
        {
            return None;
        }
        let schema = infer_schema(&metadata).ok()?;
        let mut wanted = Vec::new();
        let mut present = Vec::new();
        for (i, name) in required.iter().chain(optional).enumerate() {
            let fields = schema.iter_values().filter(|f| f.name == *name).count();
            match fields {
                0 if i >= required.len() => {}
                1 => {}
                _ => return None,
            }
            if fields == 1 {
                let field = schema.get(name)?;
                if !matches!(
                    field.dtype,
                    ArrowDataType::Utf8View | ArrowDataType::LargeUtf8 | ArrowDataType::Utf8
                ) {
                    return None;
                }
                for group in &metadata.row_groups {
                    let mut chunks = group.columns_under_root_iter(name)?;
                    let (Some(chunk), None) = (chunks.next(), chunks.next()) else {
                        return None;
                    };
                    let d = &chunk.descriptor().descriptor;
                    if chunk.physical_type() != PhysicalType::ByteArray
                        || d.max_rep_level != 0
                        || d.max_def_level > 1
                    {
                        return None;
                    }
                }
            }
            wanted.push(*name);
            present.push(fields == 1);
        }
        Some(PageFile {
            bytes,
            metadata,
            wanted,
            present,
        })
    }

    /// The rows of each row group, in order.
    pub fn groups(&self) -> Vec<usize> {
        self.metadata
            .row_groups
            .iter()
            .map(|g| g.num_rows())
            .collect()
    }

    /// Row group `g`'s wanted columns, decoded on the calling thread or,
    /// `parallel`, on Rayon's; `None` when one of them is not of the plain
    /// shape this reads.
    pub fn group(&self, g: usize, parallel: bool) -> Option<GroupTexts> {
        // A damaged page header can make the reader panic (an encoding the
        // format does not define, read where this does not look first).
        crate::expected_panic(|| self.group_unguarded(g, parallel))
            .ok()
            .flatten()
    }

    fn group_unguarded(&self, g: usize, parallel: bool) -> Option<GroupTexts> {
        let group = self.metadata.row_groups.get(g)?;
        let rows = group.num_rows();
        let one = |(name, &present): (&&str, &bool)| {
            if !present {
                return Some(None);
            }
            let chunk = group.columns_under_root_iter(name)?.next()?;
            // On one of Rayon's threads, whose panic hook is its own.
            crate::expected_panic(|| column(&self.bytes, chunk, rows))
                .ok()
                .flatten()
                .map(Some)
        };
        let cols: Option<Vec<Option<TextColumn>>> = match parallel {
            true => self
                .wanted
                .par_iter()
                .zip(self.present.par_iter())
                .map(one)
                .collect(),
            false => self.wanted.iter().zip(&self.present).map(one).collect(),
        };
        Some(GroupTexts { cols: cols? })
    }
}

impl PageFile {
    /// The wanted columns at rows `start..start + len` of the file, when
    /// these are whole row groups that decode (their columns joined);
    /// `None` otherwise.
    pub fn rows(&self, start: usize, len: usize) -> Option<Vec<Option<TextColumn>>> {
        let mut out: Option<Vec<Option<TextColumn>>> = None;
        let mut first = 0;
        for (g, rows) in self.groups().into_iter().enumerate() {
            let end = first + rows;
            if end <= start || rows == 0 {
                first = end;
                continue;
            }
            if first >= start + len {
                break;
            }
            if first < start || end > start + len {
                return None;
            }
            let texts = self.group(g, false)?;
            match &mut out {
                None => out = Some(texts.cols),
                Some(cols) => {
                    for (c, more) in cols.iter_mut().zip(texts.cols) {
                        if let (Some(c), Some(more)) = (c, more) {
                            c.append(more)?;
                        }
                    }
                }
            }
            first = end;
        }
        out.filter(|cols| cols.iter().flatten().all(|c| c.spans.len() == len))
    }
}

impl TextColumn {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Value `i`, `""` for a null.
    #[inline]
    pub fn get(&self, i: usize) -> &str {
        let (start, end) = self.spans[i];
        let bytes = &self.bytes[start as usize..end as usize];
        // SAFETY: every value was checked to be UTF-8 when its page was
        // read (in `column`).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// `more`'s values after these; `None` past 4 GiB.
    fn append(&mut self, more: TextColumn) -> Option<()> {
        let base = u32::try_from(self.bytes.len()).ok()?;
        u32::try_from(self.bytes.len() + more.bytes.len()).ok()?;
        self.bytes.extend_from_slice(&more.bytes);
        self.spans
            .extend(more.spans.iter().map(|&(s, e)| (s + base, e + base)));
        Some(())
    }

    /// Whether any of rows `start..start + len` is longer than `bytes`.
    pub fn any_longer(&self, start: usize, len: usize, bytes: usize) -> bool {
        self.spans[start..start + len]
            .iter()
            .any(|&(s, e)| (e - s) as usize > bytes)
    }
}

/// A column chunk's `rows` values, or `None` when they are not plain or
/// dictionary text that decodes. The decompressed pages are kept as they
/// are, each value found where it lies: copied out one by one, the values
/// took more time than the pages' decompression.
fn column(bytes: &Buffer<u8>, chunk: &ColumnChunkMetadata, rows: usize) -> Option<TextColumn> {
    let optional = chunk.descriptor().descriptor.max_def_level == 1;
    let reader =
        get_page_iterator(chunk, Cursor::new(bytes.clone()), Vec::new(), bytes.len()).ok()?;
    let mut pages = BasicDecompressor::new(reader, Vec::new());
    let size = usize::try_from(chunk.uncompressed_size()).ok()?;
    let mut out = TextColumn {
        bytes: Vec::with_capacity(size.min(bytes.len().saturating_mul(8))),
        spans: Vec::with_capacity(rows),
    };
    // The dictionary's values, where they are in `out.bytes`.
    let dict: Option<Vec<(u32, u32)>> = match pages.read_dict_page().ok()? {
        Some(page) => {
            let mut spans = Vec::new();
            plain(&page.buffer, page.num_values, &mut spans)?;
            let base = u32::try_from(out.bytes.len()).ok()?;
            out.bytes.extend_from_slice(&page.buffer);
            for span in &mut spans {
                std::str::from_utf8(&page.buffer[span.0 as usize..span.1 as usize]).ok()?;
                *span = (span.0 + base, span.1 + base);
            }
            Some(spans)
        }
        None => None,
    };
    let mut defined: Vec<u32> = Vec::new();
    let mut values: Vec<(u32, u32)> = Vec::new();
    while let Some(item) = pages.next() {
        let page = item.ok()?.decompress(&mut pages).ok()?;
        let n = page.num_values();
        if out.spans.len() + n > rows {
            return None;
        }
        let split = split_buffer(&page).ok()?;
        // Read from the header as stored: `DataPage::encoding` panics on a
        // value the format does not define (a damaged file).
        let (encoding, levels) = match page.header() {
            DataPageHeader::V1(h) => (h.encoding, Some(h.definition_level_encoding)),
            DataPageHeader::V2(h) => (h.encoding, None),
        };
        let present = if optional {
            if levels.is_some_and(|l| l != FormatEncoding::RLE) {
                return None;
            }
            defined = HybridRleDecoder::new(split.def, 1, n).collect().ok()?;
            let present = defined.iter().filter(|&&d| d == 1).count();
            if present == n {
                defined.clear();
            }
            present
        } else {
            defined.clear();
            n
        };
        #[cfg(test)]
        tests::SEEN.lock().unwrap().insert(encoding.0);
        // Each present value as (start, end) in `out.bytes`.
        match encoding {
            FormatEncoding::PLAIN => {
                plain(split.values, present, &mut values)?;
                let base = u32::try_from(out.bytes.len()).ok()?;
                u32::try_from(out.bytes.len() + split.values.len()).ok()?;
                for &(start, end) in &values {
                    let v = &split.values[start as usize..end as usize];
                    if !v.is_ascii() {
                        std::str::from_utf8(v).ok()?;
                    }
                }
                out.bytes.extend_from_slice(split.values);
                for span in &mut values {
                    *span = (span.0 + base, span.1 + base);
                }
            }
            FormatEncoding::PLAIN_DICTIONARY | FormatEncoding::RLE_DICTIONARY => {
                let dict = dict.as_ref()?;
                let (&width, indices) = split.values.split_first()?;
                if width > 32 {
                    return None;
                }
                let indices = HybridRleDecoder::new(indices, u32::from(width), present)
                    .collect()
                    .ok()?;
                if indices.len() != present {
                    return None;
                }
                values.clear();
                for i in indices {
                    values.push(*dict.get(i as usize)?);
                }
            }
            _ => return None,
        }
        if defined.is_empty() {
            out.spans.extend_from_slice(&values);
        } else {
            let mut next = values.iter();
            for &d in &defined {
                out.spans.push(if d == 1 { *next.next()? } else { (0, 0) });
            }
        }
        pages.reuse_page_buffer(page);
    }
    (out.spans.len() == rows).then_some(out)
}

/// The `n` plain-encoded byte arrays of `buf` (each a little-endian
/// length and its bytes) as (start, end); `None` when `buf` does not hold
/// exactly that.
fn plain(buf: &[u8], n: usize, out: &mut Vec<(u32, u32)>) -> Option<()> {
    out.clear();
    out.reserve(n);
    u32::try_from(buf.len()).ok()?;
    let mut at = 0usize;
    for _ in 0..n {
        let len = u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?);
        let start = at + 4;
        at = start.checked_add(len as usize)?;
        if at > buf.len() {
            return None;
        }
        out.push((start as u32, at as u32));
    }
    (at == buf.len()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    /// The value encodings of the pages read.
    pub static SEEN: std::sync::Mutex<std::collections::BTreeSet<i32>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());

    fn write(df: &mut DataFrame, group: usize, path: &Path) {
        let f = std::fs::File::create(path).unwrap();
        ParquetWriter::new(f)
            .with_row_group_size(Some(group))
            .finish(df)
            .unwrap();
    }

    fn texts(g: &GroupTexts, k: usize) -> Vec<String> {
        let c = g.cols[k].as_ref().unwrap();
        (0..c.len()).map(|i| c.get(i).to_owned()).collect()
    }

    #[test]
    fn plain_dictionary_and_null_values_read_as_polars_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let n = 5000;
        let a: Vec<Option<String>> = (0..n)
            .map(|i| (i % 7 != 3).then(|| format!("id-{i}-é€")))
            .collect();
        let b: Vec<&str> = (0..n).map(|i| ["x", "", "yy"][i % 3]).collect();
        let mut df = df!("a" => a.clone(), "b" => b.clone(), "other" => vec![1i64; n]).unwrap();
        write(&mut df, 1234, &path);
        let file = PageFile::open(&path, &["a", "b"], &["c"]).unwrap();
        assert!(file.groups().len() > 1);
        assert_eq!(file.groups().iter().sum::<usize>(), n);
        let mut got_a = Vec::new();
        let mut got_b = Vec::new();
        for g in 0..file.groups().len() {
            let t = file.group(g, g % 2 == 0).unwrap();
            assert!(t.cols[2].is_none());
            got_a.extend(texts(&t, 0));
            got_b.extend(texts(&t, 1));
        }
        let want_a: Vec<String> = a.iter().map(|v| v.clone().unwrap_or_default()).collect();
        assert_eq!(got_a, want_a);
        assert_eq!(got_b, b);
        let seen = SEEN.lock().unwrap();
        let (plain, dictionary) = (FormatEncoding::PLAIN.0, FormatEncoding::RLE_DICTIONARY.0);
        assert!(
            seen.contains(&plain) && seen.contains(&dictionary),
            "{seen:?}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any text column, nulls and all, in row groups and pages of any
        /// size and any codec, reads from its pages as Polars reads it.
        #[test]
        fn any_text_column_reads_as_polars_reads_it(
            values in proptest::collection::vec(
                proptest::option::of(proptest::prop_oneof![
                    "[a-c]{0,2}",
                    "\\PC{0,40}",
                    "[x]{1000,1100}",
                ]),
                1..3000,
            ),
            group in 1usize..2000,
            page in proptest::option::of(64usize..5000),
            codec in 0usize..4,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.parquet");
            let s: StringChunked = values.iter().map(|v| v.as_deref()).collect();
            let s = s.with_name("a".into()).into_series();
            let n = values.len();
            let mut df = DataFrame::new(n, vec![s.into_column()]).unwrap();
            let compression = [
                ParquetCompression::Uncompressed,
                ParquetCompression::Snappy,
                ParquetCompression::Zstd(None),
                ParquetCompression::Lz4Raw,
            ][codec];
            ParquetWriter::new(std::fs::File::create(&path).unwrap())
                .with_row_group_size(Some(group))
                .with_data_page_size(page)
                .with_compression(compression)
                .finish(&mut df)
                .unwrap();
            let polars = ParquetReader::new(std::fs::File::open(&path).unwrap())
                .finish()
                .unwrap();
            let want: Vec<&str> = polars
                .column("a")
                .unwrap()
                .str()
                .unwrap()
                .iter()
                .map(|v| v.unwrap_or(""))
                .collect();
            let file = PageFile::open(&path, &["a"], &[]).unwrap();
            let mut got = Vec::new();
            for g in 0..file.groups().len() {
                got.extend(texts(&file.group(g, g % 2 == 1).unwrap(), 0));
            }
            proptest::prop_assert_eq!(got, want);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// A file with bytes changed anywhere (a disk, a transfer, a hostile
        /// feed) reads as something or as `None`, never as a panic: the
        /// night then reads it through Polars, which reports it.
        #[test]
        fn a_damaged_file_is_read_or_refused_never_a_panic(
            changes in proptest::collection::vec((0.0f64..1.0, proptest::num::u8::ANY), 1..8),
            codec in 0usize..2,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.parquet");
            let a: Vec<Option<String>> = (0..600)
                .map(|i| (i % 11 != 4).then(|| format!("v{}-é", i % 40)))
                .collect();
            let b: Vec<String> = (0..600).map(|i| format!("unique value {i}")).collect();
            let mut df = df!("a" => a, "b" => b).unwrap();
            let compression = [ParquetCompression::Uncompressed, ParquetCompression::Snappy][codec];
            ParquetWriter::new(std::fs::File::create(&path).unwrap())
                .with_row_group_size(Some(200))
                .with_compression(compression)
                .finish(&mut df)
                .unwrap();
            let mut bytes = std::fs::read(&path).unwrap();
            for (at, byte) in changes {
                let i = ((bytes.len() - 1) as f64 * at) as usize;
                bytes[i] = byte;
            }
            std::fs::write(&path, &bytes).unwrap();
            if let Some(file) = PageFile::open(&path, &["a", "b"], &[]) {
                for g in 0..file.groups().len() {
                    if let Some(t) = file.group(g, g % 2 == 0) {
                        for c in t.cols.iter().flatten() {
                            for i in 0..c.len() {
                                proptest::prop_assert!(std::str::from_utf8(c.get(i).as_bytes()).is_ok());
                            }
                        }
                    }
                }
                let _ = file.rows(0, 400);
            }
        }
    }

    /// Bytes that are not UTF-8 in a text column (patched into a file
    /// Polars wrote, uncompressed): left to Polars, which refuses them.
    #[test]
    fn a_value_not_utf8_is_left_to_polars() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let a: Vec<String> = (0..100).map(|i| format!("value-{i:03}-é")).collect();
        let mut df = df!("a" => a).unwrap();
        let f = std::fs::File::create(&path).unwrap();
        ParquetWriter::new(f)
            .with_compression(ParquetCompression::Uncompressed)
            .finish(&mut df)
            .unwrap();
        assert!(PageFile::open(&path, &["a"], &[])
            .unwrap()
            .group(0, true)
            .is_some());
        let mut bytes = std::fs::read(&path).unwrap();
        let at = memchr::memmem::find(&bytes, "value-042-é".as_bytes()).unwrap();
        bytes[at + 10] = 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        let file = PageFile::open(&path, &["a"], &[]).unwrap();
        assert!(file.group(0, false).is_none());
    }

    #[test]
    fn other_shapes_are_left_to_polars() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut df = df!("a" => ["x", "y"], "n" => [1i64, 2]).unwrap();
        write(&mut df, 10, &path);
        // A wanted column that is not text, a required one missing.
        assert!(PageFile::open(&path, &["a", "n"], &[]).is_none());
        assert!(PageFile::open(&path, &["a", "z"], &[]).is_none());
        assert!(PageFile::open(&path, &["a"], &["z"]).is_some());
        // No rows.
        let mut empty = df!("a" => Vec::<String>::new()).unwrap();
        write(&mut empty, 10, &path);
        assert!(PageFile::open(&path, &["a"], &[]).is_none());
    }
}
