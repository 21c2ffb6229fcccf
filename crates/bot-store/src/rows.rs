//! Fields to columns and back, checked both ways: unsigned times and counts
//! are stored as BIGINT (refused above `i64::MAX`, reported corrupt if
//! negative), booleans as 0/1, lists, facts and JSON values as JSON text,
//! states by their wire names. Multi-row `VALUES` lists are built here too.

use std::fmt::Write as _;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Backend, StoreError};

/// Bind parameters per statement, at most. SQLite allows 32,766 (3.32+) and
/// PostgreSQL 65,535; multi-row inserts stop gaining long before either.
pub(crate) const MAX_BINDS: usize = 10_000;

/// Names a record while its fields are encoded, for errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    /// "agent", "task", "target".
    pub(crate) kind: &'static str,
    /// Its id (a target's task id).
    pub(crate) id: &'a str,
    /// A target's sequence number.
    pub(crate) seq: Option<u32>,
}

impl Fields<'_> {
    fn invalid(&self, field: &str, why: impl std::fmt::Display) -> StoreError {
        let seq = self.seq.map(|s| format!(" #{s}")).unwrap_or_default();
        StoreError::Invalid {
            what: format!("{} {}{seq} {field}: {why}", self.kind, self.id),
        }
    }

    /// `v` as a BIGINT, or [`StoreError::Invalid`].
    pub(crate) fn int(&self, v: u64, field: &str) -> Result<i64, StoreError> {
        i64::try_from(v)
            .map_err(|_| self.invalid(field, format_args!("{v} is larger than {}", i64::MAX)))
    }

    /// [`Fields::int`] for an optional value.
    pub(crate) fn opt_int(&self, v: Option<u64>, field: &str) -> Result<Option<i64>, StoreError> {
        v.map(|v| self.int(v, field)).transpose()
    }

    /// `v` as JSON text.
    pub(crate) fn json<T: Serialize + ?Sized>(
        &self,
        v: &T,
        field: &str,
    ) -> Result<String, StoreError> {
        serde_json::to_string(v).map_err(|e| self.invalid(field, e))
    }
}

/// `($1, …, $cols), ($cols+1, …)`: `rows` tuples of `cols` placeholders,
/// numbered in order.
///
/// For SQLite they are anonymous (`?`), which binds the same way (in order)
/// but fast: SQLite looks a numbered parameter's name up in a list, so
/// binding n numbered parameters costs O(n²), seconds for a 10,000-value
/// statement.
pub(crate) fn values(backend: Backend, cols: usize, rows: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 7);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            match backend {
                Backend::Sqlite => s.push('?'),
                Backend::Postgres => {
                    let _ = write!(s, "${}", r * cols + c + 1);
                }
            }
        }
        s.push(')');
    }
    s
}

/// Reads the columns of one row, turning every failure into
/// [`StoreError::Corrupt`] that names the table, the row and the column.
pub(crate) struct Reader<'r> {
    row: &'r AnyRow,
    table: &'static str,
    key: String,
}

impl<'r> Reader<'r> {
    /// A reader of `row` from `table`.
    pub(crate) fn new(row: &'r AnyRow, table: &'static str) -> Reader<'r> {
        Reader {
            row,
            table,
            key: String::new(),
        }
    }

    /// Names the row in later errors (its primary key).
    pub(crate) fn keyed(&mut self, key: String) {
        self.key = key;
    }

    fn corrupt(&self, col: &str, why: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what: format!("{} {} column {col}: {why}", self.table, self.key),
        }
    }

    fn get<T>(&self, col: &str) -> Result<T, StoreError>
    where
        T: for<'a> sqlx::Decode<'a, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        self.row.try_get(col).map_err(|e| self.corrupt(col, e))
    }

    /// A TEXT column.
    pub(crate) fn text(&self, col: &str) -> Result<String, StoreError> {
        self.get(col)
    }

    /// A nullable TEXT column.
    pub(crate) fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        self.get(col)
    }

    /// A BIGINT column.
    pub(crate) fn i64(&self, col: &str) -> Result<i64, StoreError> {
        self.get(col)
    }

    /// A nullable BIGINT column.
    pub(crate) fn opt_i64(&self, col: &str) -> Result<Option<i64>, StoreError> {
        self.get(col)
    }

    /// A DOUBLE PRECISION column.
    pub(crate) fn f64(&self, col: &str) -> Result<f64, StoreError> {
        self.get(col)
    }

    /// A BIGINT column holding an unsigned value.
    pub(crate) fn uint<T: TryFrom<i64>>(&self, col: &str) -> Result<T, StoreError> {
        let v = self.i64(col)?;
        T::try_from(v).map_err(|_| self.corrupt(col, format_args!("{v} is out of range")))
    }

    /// A nullable BIGINT column holding an unsigned value.
    pub(crate) fn opt_uint(&self, col: &str) -> Result<Option<u64>, StoreError> {
        match self.opt_i64(col)? {
            None => Ok(None),
            Some(v) => u64::try_from(v)
                .map(Some)
                .map_err(|_| self.corrupt(col, format_args!("{v} is negative"))),
        }
    }

    /// A BIGINT 0/1 column.
    pub(crate) fn bool(&self, col: &str) -> Result<bool, StoreError> {
        match self.i64(col)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.corrupt(col, format_args!("{v} is not 0 or 1"))),
        }
    }

    /// A TEXT column holding JSON.
    pub(crate) fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T, StoreError> {
        let text = self.text(col)?;
        serde_json::from_str(&text).map_err(|e| self.corrupt(col, e))
    }

    /// A nullable TEXT column holding JSON.
    pub(crate) fn opt_json<T: DeserializeOwned>(&self, col: &str) -> Result<Option<T>, StoreError> {
        match self.opt_text(col)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| self.corrupt(col, e)),
        }
    }

    /// A TEXT column holding a name that parses (a state).
    pub(crate) fn parse<T: FromStr<Err = String>>(&self, col: &str) -> Result<T, StoreError> {
        let text = self.text(col)?;
        text.parse().map_err(|e: String| self.corrupt(col, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_numbers_placeholders_row_by_row() {
        assert_eq!(values(Backend::Postgres, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(values(Backend::Postgres, 1, 1), "($1)");
        assert_eq!(values(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
    }

    #[test]
    fn ints_above_i64_are_refused_naming_the_field() {
        let f = Fields {
            kind: "target",
            id: "t1",
            seq: Some(3),
        };
        assert_eq!(f.int(5, "x").ok(), Some(5));
        match f.int(u64::MAX, "started_ms") {
            Err(StoreError::Invalid { what }) => {
                assert!(what.starts_with("target t1 #3 started_ms: "), "{what}")
            }
            other => panic!("{other:?}"),
        }
    }
}
