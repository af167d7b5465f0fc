//! Typed, lenient access to a request payload. Every accessor turns a wrong or missing
//! field into the documented error (880001 missing, 880004 wrong type, 880003 bad value)
//! naming the field, so handlers never panic on client input.

use super::{Code, Failure};
use serde_json::{Map, Value};

/// A request payload (without its `rid`).
#[derive(Debug, Clone, Copy)]
pub struct Args<'a>(pub &'a Map<String, Value>);

fn wrong_type(key: &str, want: &str) -> Failure {
    Failure::new(Code::InvalidType, format!("{key} must be {want}"))
}

impl<'a> Args<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        match self.0.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// An optional string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, Failure> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type(key, "a string")),
        }
    }

    /// A required, non-empty string.
    pub fn str(&self, key: &str) -> Result<&'a str, Failure> {
        match self.opt_str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(Failure::new(Code::Missing, format!("{key} is required"))),
        }
    }

    /// A string or a number, as text (ids the SDK sends either way: gid, target_id).
    pub fn opt_id(&self, key: &str) -> Result<Option<String>, Failure> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(wrong_type(key, "a string or a number")),
        }
    }

    /// An optional integer, accepting numeric strings (sync keys come back as strings).
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, Failure> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| wrong_type(key, "an integer")),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| wrong_type(key, "an integer")),
            Some(_) => Err(wrong_type(key, "an integer")),
        }
    }

    /// An optional boolean; `0`/`1` are accepted too.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, Failure> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(_) => Err(wrong_type(key, "a boolean")),
        }
    }

    /// An optional JSON object.
    pub fn opt_obj(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, Failure> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(wrong_type(key, "an object")),
        }
    }

    /// A required JSON object.
    pub fn obj(&self, key: &str) -> Result<&'a Map<String, Value>, Failure> {
        self.opt_obj(key)?
            .ok_or_else(|| Failure::new(Code::Missing, format!("{key} is required")))
    }

    /// An optional array.
    pub fn opt_array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, Failure> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(wrong_type(key, "an array")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors_map_errors_to_codes() {
        let v = json!({"s": "x", "e": "", "n": 5, "ns": " 17 ", "b": true, "o": {}, "a": [], "z": null, "f": 1.0});
        let m = v.as_object().unwrap();
        let a = Args(m);
        assert_eq!(a.str("s").unwrap(), "x");
        assert_eq!(a.str("e").unwrap_err().code, Code::Missing);
        assert_eq!(a.str("z").unwrap_err().code, Code::Missing);
        assert_eq!(a.str("n").unwrap_err().code, Code::InvalidType);
        assert_eq!(a.opt_i64("ns").unwrap(), Some(17));
        assert_eq!(a.opt_i64("f").unwrap(), Some(1));
        assert_eq!(a.opt_i64("s").unwrap_err().code, Code::InvalidType);
        assert_eq!(a.opt_id("n").unwrap().as_deref(), Some("5"));
        assert_eq!(a.opt_bool("b").unwrap(), Some(true));
        assert_eq!(a.opt_bool("s").unwrap_err().code, Code::InvalidType);
        assert!(a.obj("o").is_ok());
        assert_eq!(a.obj("missing").unwrap_err().code, Code::Missing);
        assert!(a.opt_array("a").unwrap().is_some());
    }
}
