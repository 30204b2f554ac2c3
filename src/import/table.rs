//! One CSV table read as a stream, shared by every file format: the header matched by name
//! (case-insensitive, trimmed, a UTF-8 BOM allowed), records decoded as UTF-8 one at a time
//! (memory stays flat in the file size), blank lines skipped, and the line each record starts on
//! kept for reports. CRLF or LF and quoted fields (commas, quotes, newlines) are the csv crate's.

use std::collections::HashMap;
use std::io::Read;

use super::error::{ImportError, RowError};
use super::limits::{self, Guarded, RowBudget};

/// A counting wrapper so progress can report bytes read.
pub(crate) struct Counting<R> {
    inner: R,
    pub(crate) bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Counting<R> {
    pub(crate) fn new(inner: R) -> Self {
        Counting {
            inner,
            bytes: Default::default(),
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

pub(crate) struct Table<R> {
    pub(crate) file: String,
    reader: csv::Reader<Guarded<R>>,
    budget: RowBudget,
    records: u64,
    /// Header names as written (trimmed, BOM removed).
    pub(crate) header: Vec<String>,
    /// Lowercased header name → column index.
    index: HashMap<String, usize>,
    record: csv::ByteRecord,
    /// Fields of the current record, decoded.
    fields: Vec<String>,
    line: u64,
}

/// What [`Table::next`] found.
pub(crate) enum Next {
    Row,
    /// A row that cannot be read as a row (wrong number of fields): report and skip.
    Bad(RowError),
    End,
}

impl<R: Read> Table<R> {
    pub(crate) fn open(file: &str, input: R) -> Result<Table<R>, ImportError> {
        let (guarded, budget) = Guarded::new(input);
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(guarded);
        let mut t = Table {
            file: file.to_string(),
            reader,
            budget,
            records: 0,
            header: Vec::new(),
            index: HashMap::new(),
            record: csv::ByteRecord::new(),
            fields: Vec::new(),
            line: 0,
        };
        if !t.read_record()? {
            return Err(ImportError::Empty {
                file: file.to_string(),
            });
        }
        let mut header = t.fields.clone();
        if let Some(first) = header.first_mut() {
            *first = first.trim_start_matches('\u{feff}').to_string();
        }
        for (i, name) in header.iter_mut().enumerate() {
            *name = name.trim().to_string();
            if name.is_empty() {
                continue;
            }
            if let Some(&first) = t.index.get(&name.to_lowercase()) {
                return Err(ImportError::DuplicateColumn {
                    file: file.to_string(),
                    column: name.clone(),
                    first: first + 1,
                    second: i + 1,
                });
            }
            t.index.insert(name.to_lowercase(), i);
        }
        t.header = header;
        Ok(t)
    }

    /// Index of a column by name (case-insensitive).
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.index.get(&name.to_lowercase()).copied()
    }

    pub(crate) fn require(&self, name: &str) -> Result<usize, ImportError> {
        self.column(name).ok_or_else(|| ImportError::MissingColumn {
            file: self.file.clone(),
            column: name.to_string(),
        })
    }

    /// The header's name of a column index.
    pub(crate) fn name(&self, i: usize) -> &str {
        self.header.get(i).map(String::as_str).unwrap_or("")
    }

    /// Header columns not in `known` (case-insensitive).
    pub(crate) fn unknown_columns(&self, known: &[&str]) -> Vec<String> {
        self.header
            .iter()
            .filter(|h| !h.is_empty() && !known.iter().any(|k| k.eq_ignore_ascii_case(h)))
            .cloned()
            .collect()
    }

    /// Read one record into `fields`; false at the end. Non-UTF-8 is a file error.
    fn read_record(&mut self) -> Result<bool, ImportError> {
        loop {
            let more = self
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| self.read_error(e))?;
            if !more {
                return Ok(false);
            }
            self.budget.reset();
            self.records += 1;
            if self.records > limits::MAX_ROWS {
                return Err(ImportError::Limit {
                    file: self.file.clone(),
                    row: self.line + 1,
                    what: format!(
                        "the file has more than {} rows (limit max_rows)",
                        limits::MAX_ROWS
                    ),
                });
            }
            self.line = self.record.position().map_or(self.line + 1, |p| p.line());
            // Field buffers are reused from record to record: no allocation per field.
            let n = self.record.len();
            self.fields.resize_with(n, String::new);
            for (i, raw) in self.record.iter().enumerate() {
                match std::str::from_utf8(raw) {
                    Ok(s) => {
                        let f = &mut self.fields[i];
                        f.clear();
                        f.push_str(s);
                    }
                    Err(e) => {
                        let column = if self.header.is_empty() {
                            format!("#{}", i + 1)
                        } else {
                            self.header
                                .get(i)
                                .cloned()
                                .unwrap_or_else(|| format!("#{}", i + 1))
                        };
                        return Err(ImportError::Encoding {
                            file: self.file.clone(),
                            row: self.line,
                            column,
                            detail: format!("invalid byte after {} valid bytes", e.valid_up_to()),
                        });
                    }
                }
            }
            // Blank lines and rows of empty cells (spreadsheet leftovers) are not rows.
            if self.fields.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            return Ok(true);
        }
    }

    /// A read that failed: a limit or a damaged file (INVALID_ARGUMENT), or the disk.
    fn read_error(&self, e: csv::Error) -> ImportError {
        let row = self.line + 1;
        match e.into_kind() {
            csv::ErrorKind::Io(io) => {
                if let Some(what) = limits::limit_of(&io) {
                    ImportError::Limit {
                        file: self.file.clone(),
                        row,
                        what,
                    }
                } else if io.kind() == std::io::ErrorKind::InvalidData {
                    ImportError::Damaged {
                        file: self.file.clone(),
                        row,
                        reason: io.to_string(),
                    }
                } else {
                    ImportError::Io {
                        file: self.file.clone(),
                        source: io,
                    }
                }
            }
            other => ImportError::Io {
                file: self.file.clone(),
                source: std::io::Error::other(format!("{other:?}")),
            },
        }
    }

    pub(crate) fn next(&mut self) -> Result<Next, ImportError> {
        if !self.read_record()? {
            return Ok(Next::End);
        }
        if self.fields.len() != self.header.len() {
            return Ok(Next::Bad(RowError {
                file: self.file.clone(),
                row: self.line,
                column: None,
                import_id: None,
                reason: format!(
                    "has {} fields but the header has {} columns (check quoting)",
                    self.fields.len(),
                    self.header.len()
                ),
            }));
        }
        Ok(Next::Row)
    }

    /// The current record's line (where it starts).
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// A field of the current record, trimmed ("" when the column is absent).
    pub(crate) fn get(&self, col: Option<usize>) -> &str {
        col.and_then(|i| self.fields.get(i))
            .map(|s| s.trim())
            .unwrap_or("")
    }

    /// A row error about column `col` of the current record.
    pub(crate) fn row_error(
        &self,
        col: usize,
        import_id: Option<&str>,
        reason: String,
    ) -> RowError {
        RowError {
            file: self.file.clone(),
            row: self.line,
            column: Some(self.name(col).to_string()),
            import_id: import_id.map(str::to_string),
            reason,
        }
    }
}
