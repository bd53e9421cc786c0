//! A `WHERE` clause built up one condition at a time, with numbered parameters: the history
//! query and the quotas' use select series the same ways (a key, an interface glob, any of the
//! metered globs).
use rusqlite::types::Value;

/// SQL text and the values of its `?N` parameters, in order.
pub struct Filter {
    pub sql: String,
    pub values: Vec<Value>,
}

impl Filter {
    /// `sql` whose parameters `?1`… are `values`.
    #[must_use]
    pub fn new(sql: String, values: Vec<Value>) -> Self {
        Self { sql, values }
    }

    /// Appends `condition` (with one `?`) and its value.
    pub fn and(&mut self, condition: &str, value: Value) {
        self.values.push(value);
        let numbered = format!("?{}", self.values.len());
        self.sql.push_str(&condition.replace('?', &numbered));
    }

    /// ` AND column IN (…)` of `names`; nothing when there are none (no filter).
    pub fn and_in(&mut self, column: &str, names: &[String]) {
        if names.is_empty() {
            return;
        }
        self.sql.push_str(" AND ");
        self.sql.push_str(column);
        self.sql.push_str(" IN (");
        for (index, name) in names.iter().enumerate() {
            self.and(
                if index == 0 { "?" } else { ", ?" },
                Value::Text(name.clone()),
            );
        }
        self.sql.push(')');
    }

    /// ` AND (column GLOB g1 OR …)`: no glob matches nothing (nothing is metered).
    pub fn and_glob_any(&mut self, column: &str, globs: &[String]) {
        self.sql.push_str(" AND (0");
        for glob in globs {
            self.and(&format!(" OR {column} GLOB ?"), Value::Text(glob.clone()));
        }
        self.sql.push(')');
    }
}
