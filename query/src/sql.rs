//! [`Sql`]: a statement made of constant fragments and bound values. Every value from a request
//! travels as a bound parameter, never as text spliced into a statement; `push` takes only
//! `&'static str`, so request text cannot reach it by accident.

/// How a statement marks its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholders {
    /// `?`, bound in order (the `clickhouse` crate, which escapes each value).
    Question,
    /// `$1`, `$2`… (DataFusion's parameter values).
    Numbered,
    /// No parameters: values written as literals, for people reading a statement and for
    /// benchmarks that run it in another client. The stores never run such a statement.
    Inline(Quoting),
}

/// How a string literal is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quoting {
    /// ClickHouse: backslash escapes.
    Backslash,
    /// Standard SQL (DataFusion, DuckDB): a quote is doubled.
    Standard,
}

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
}

/// A statement and its values, bound in order of appearance.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) values: Vec<Value>,
    placeholders: Placeholders,
}

impl Sql {
    pub(crate) fn new(placeholders: Placeholders, fragment: &'static str) -> Sql {
        Sql {
            text: fragment.to_string(),
            values: Vec::new(),
            placeholders,
        }
    }

    /// Appends constant SQL (never a value from a request).
    pub(crate) fn push(&mut self, fragment: &'static str) {
        self.text.push_str(fragment);
    }

    /// `a<suffix>, b<suffix>, …`: constant names (columns), each followed by `suffix`.
    pub(crate) fn list(&mut self, items: &[&'static str], suffix: &'static str) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push(item);
            self.push(suffix);
        }
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.bind(Value::Text(value.to_string()));
    }

    pub(crate) fn int(&mut self, value: i64) {
        self.bind(Value::Int(value));
    }

    /// `v1, v2, …`: the values of an `IN (…)` list or an array literal.
    pub(crate) fn texts(&mut self, values: &[String]) {
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(value);
        }
    }

    /// Appends a whole statement written with the same placeholders (its values follow ours).
    pub(crate) fn append(&mut self, other: Sql) {
        debug_assert_eq!(self.placeholders, other.placeholders);
        debug_assert!(
            self.placeholders == Placeholders::Question || self.values.is_empty(),
            "numbered placeholders cannot be renumbered"
        );
        self.text.push_str(&other.text);
        self.values.extend(other.values);
    }

    fn bind(&mut self, value: Value) {
        if let Placeholders::Inline(quoting) = self.placeholders {
            self.text.push_str(&literal(&value, quoting));
            return;
        }
        self.values.push(value);
        match self.placeholders {
            Placeholders::Question => self.text.push('?'),
            Placeholders::Numbered => {
                self.text.push('$');
                self.text.push_str(&self.values.len().to_string());
            }
            Placeholders::Inline(_) => unreachable!("inline values are written above"),
        }
    }
}

fn literal(value: &Value, quoting: Quoting) -> String {
    match (value, quoting) {
        (Value::Int(n), _) => n.to_string(),
        (Value::Text(text), Quoting::Backslash) => {
            format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        (Value::Text(text), Quoting::Standard) => format!("'{}'", text.replace('\'', "''")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_never_spliced() {
        let mut sql = Sql::new(Placeholders::Numbered, "SELECT 1 WHERE a = ");
        sql.text("x' OR 1=1 --");
        sql.push(" AND b IN (");
        sql.texts(&["p".into(), "q".into()]);
        sql.push(") AND c = ");
        sql.int(7);
        assert_eq!(
            sql.text,
            "SELECT 1 WHERE a = $1 AND b IN ($2, $3) AND c = $4"
        );
        assert_eq!(sql.values[0], Value::Text("x' OR 1=1 --".into()));

        let mut sql = Sql::new(Placeholders::Question, "a = ");
        sql.int(1);
        assert_eq!(sql.text, "a = ?");

        let mut sql = Sql::new(Placeholders::Inline(Quoting::Backslash), "a = ");
        sql.text("it's \\");
        assert_eq!(sql.text, r"a = 'it\'s \\'");
        let mut sql = Sql::new(Placeholders::Inline(Quoting::Standard), "a = ");
        sql.text("it's");
        assert_eq!(sql.text, "a = 'it''s'");
        assert!(sql.values.is_empty());
    }
}
