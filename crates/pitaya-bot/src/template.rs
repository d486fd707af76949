//! `${var}` substitution in routes and data, compiled once when the spec is loaded.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

/// A bot's variables: built-ins (`bot_id`, `iteration`), the spec's `vars`, and the values
/// stored by earlier steps.
pub type Vars = HashMap<String, Value>;

/// A variable that was referenced but has no value (a `store` that did not happen).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable ${{{0}}} has no value")]
pub struct MissingVar(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(String),
}

/// A string with `${name}` placeholders. `$$` stands for a literal `$`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Compiles `text`.
    ///
    /// # Errors
    /// An unclosed `${`, an empty or invalid name (names are ASCII letters, digits, `_`
    /// and `-`), or a `$` followed by something else.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            lit.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(after) = after.strip_prefix('$') {
                lit.push('$');
                rest = after;
            } else if let Some(after) = after.strip_prefix('{') {
                let end = after.find('}').ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
                let name = &after[..end];
                let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
                if name.is_empty() || !name.chars().all(valid) {
                    return Err(format!("bad variable name {name:?} in {text:?}"));
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var(name.to_owned()));
                rest = &after[end + 1..];
            } else {
                return Err(format!("a $ must start ${{name}} or be doubled in {text:?}"));
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Self { parts })
    }

    /// The text itself when there is no placeholder.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(text)] => Some(text),
            _ => None,
        }
    }

    /// Names of the variables used, in order.
    pub fn var_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(name) => Some(name.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// The text with variables replaced: strings as they are, other values as JSON text.
    ///
    /// # Errors
    /// [`MissingVar`] for a variable without a value.
    pub fn render(&self, vars: &Vars) -> Result<String, MissingVar> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(text) => out.push_str(text),
                Part::Var(name) => match vars.get(name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(other) => out.push_str(&other.to_string()),
                    None => return Err(MissingVar(name.clone())),
                },
            }
        }
        Ok(out)
    }

    /// [`render`](Self::render) without an allocation when there is no placeholder
    /// (the common case for routes, rendered once per request).
    ///
    /// # Errors
    /// [`MissingVar`] for a variable without a value.
    pub fn render_cow(&self, vars: &Vars) -> Result<Cow<'_, str>, MissingVar> {
        match self.as_literal() {
            Some(text) => Ok(Cow::Borrowed(text)),
            None => self.render(vars).map(Cow::Owned),
        }
    }

    /// Like [`render`](Self::render), except that a template made of a single `${name}`
    /// yields the variable's value with its JSON type (a number stays a number).
    ///
    /// # Errors
    /// [`MissingVar`] for a variable without a value.
    pub fn render_value(&self, vars: &Vars) -> Result<Value, MissingVar> {
        match self.parts.as_slice() {
            [Part::Var(name)] => vars.get(name).cloned().ok_or_else(|| MissingVar(name.clone())),
            _ => self.render(vars).map(Value::String),
        }
    }
}

/// A JSON value whose strings (not keys) may hold placeholders.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTemplate {
    /// A value with no placeholder, kept as is.
    Fixed(Value),
    /// A string with placeholders, rendered with [`Template::render_value`].
    Text(Template),
    /// An array with at least one placeholder inside.
    Array(Vec<ValueTemplate>),
    /// An object with at least one placeholder inside.
    Object(Vec<(String, ValueTemplate)>),
}

impl ValueTemplate {
    /// Compiles every string in `value`.
    ///
    /// # Errors
    /// As [`Template::parse`].
    pub fn compile(value: &Value) -> Result<Self, String> {
        Ok(match value {
            Value::String(text) => {
                let template = Template::parse(text)?;
                match template.as_literal() {
                    Some(lit) => Self::Fixed(Value::String(lit.to_owned())),
                    None => Self::Text(template),
                }
            }
            Value::Array(items) => {
                let items = items.iter().map(Self::compile).collect::<Result<Vec<_>, _>>()?;
                if items.iter().all(|i| matches!(i, Self::Fixed(_))) {
                    Self::Fixed(Value::Array(items.into_iter().map(Self::into_fixed).collect()))
                } else {
                    Self::Array(items)
                }
            }
            Value::Object(map) => {
                let entries = map
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), Self::compile(v)?)))
                    .collect::<Result<Vec<_>, String>>()?;
                if entries.iter().all(|(_, v)| matches!(v, Self::Fixed(_))) {
                    Self::Fixed(Value::Object(
                        entries.into_iter().map(|(k, v)| (k, v.into_fixed())).collect(),
                    ))
                } else {
                    Self::Object(entries)
                }
            }
            other => Self::Fixed(other.clone()),
        })
    }

    fn into_fixed(self) -> Value {
        match self {
            Self::Fixed(v) => v,
            // Only called once every item is known to be fixed.
            _ => Value::Null,
        }
    }

    /// Names of the variables used anywhere inside.
    pub fn var_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.collect_names(&mut names);
        names
    }

    fn collect_names<'a>(&'a self, names: &mut Vec<&'a str>) {
        match self {
            Self::Fixed(_) => {}
            Self::Text(t) => names.extend(t.var_names()),
            Self::Array(items) => items.iter().for_each(|i| i.collect_names(names)),
            Self::Object(entries) => entries.iter().for_each(|(_, v)| v.collect_names(names)),
        }
    }

    /// The value with placeholders replaced.
    ///
    /// # Errors
    /// [`MissingVar`] for a variable without a value.
    pub fn render(&self, vars: &Vars) -> Result<Value, MissingVar> {
        Ok(match self {
            Self::Fixed(v) => v.clone(),
            Self::Text(t) => t.render_value(vars)?,
            Self::Array(items) => {
                Value::Array(items.iter().map(|i| i.render(vars)).collect::<Result<_, _>>()?)
            }
            Self::Object(entries) => Value::Object(
                entries.iter().map(|(k, v)| Ok((k.clone(), v.render(vars)?))).collect::<Result<
                    _,
                    MissingVar,
                >>(
                )?,
            ),
        })
    }
}

/// What a request or notify sends, compiled from the step's `data`.
///
/// A string is sent as its UTF-8 bytes (so raw handlers such as `room.echo` get exactly
/// the text); any other value is sent as compact JSON. Absent data sends an empty body.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Bytes encoded once at load time: the data has no placeholder.
    Fixed(Bytes),
    /// A string with placeholders.
    Text(Template),
    /// A JSON value with placeholders.
    Json(ValueTemplate),
}

impl Payload {
    /// Compiles a step's `data`.
    ///
    /// # Errors
    /// As [`Template::parse`].
    pub fn compile(data: Option<&Value>) -> Result<Self, String> {
        Ok(match data {
            None | Some(Value::Null) => Self::Fixed(Bytes::new()),
            Some(Value::String(text)) => {
                let template = Template::parse(text)?;
                match template.as_literal() {
                    Some(lit) => Self::Fixed(Bytes::from(lit.to_owned())),
                    None => Self::Text(template),
                }
            }
            Some(value) => match ValueTemplate::compile(value)? {
                ValueTemplate::Fixed(v) => Self::Fixed(Bytes::from(v.to_string())),
                other => Self::Json(other),
            },
        })
    }

    /// Names of the variables used.
    pub fn var_names(&self) -> Vec<&str> {
        match self {
            Self::Fixed(_) => Vec::new(),
            Self::Text(t) => t.var_names().collect(),
            Self::Json(v) => v.var_names(),
        }
    }

    /// The bytes to send.
    ///
    /// # Errors
    /// [`MissingVar`] for a variable without a value.
    pub fn render(&self, vars: &Vars) -> Result<Bytes, MissingVar> {
        Ok(match self {
            Self::Fixed(bytes) => bytes.clone(),
            Self::Text(t) => Bytes::from(t.render(vars)?),
            Self::Json(v) => Bytes::from(v.render(vars)?.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars() -> Vars {
        [("bot_id".to_owned(), json!(3)), ("name".to_owned(), json!("ana"))].into()
    }

    #[test]
    fn strings() {
        let t = Template::parse("room.${name}-$${x}-${bot_id}").unwrap();
        assert_eq!(t.render(&vars()).unwrap(), "room.ana-${x}-3");
        assert_eq!(t.var_names().collect::<Vec<_>>(), ["name", "bot_id"]);
        assert_eq!(Template::parse("plain").unwrap().as_literal(), Some("plain"));
        assert_eq!(
            Template::parse("${nope}").unwrap().render(&vars()),
            Err(MissingVar("nope".into()))
        );
        for bad in ["${", "${}", "${a b}", "$x", "cost $"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_lone_placeholder_keeps_its_type() {
        let t = Template::parse("${bot_id}").unwrap();
        assert_eq!(t.render_value(&vars()).unwrap(), json!(3));
        let t = Template::parse("id ${bot_id}").unwrap();
        assert_eq!(t.render_value(&vars()).unwrap(), json!("id 3"));
    }

    #[test]
    fn payloads() {
        let fixed = Payload::compile(Some(&json!({"a": [1, "x"]}))).unwrap();
        assert_eq!(fixed, Payload::Fixed(Bytes::from(r#"{"a":[1,"x"]}"#)));
        let text = Payload::compile(Some(&json!("hi ${name}"))).unwrap();
        assert_eq!(text.render(&vars()).unwrap(), Bytes::from("hi ana"));
        let json = Payload::compile(Some(&json!({"n": "${bot_id}", "s": ["${name}"]}))).unwrap();
        assert_eq!(json.var_names(), ["bot_id", "name"]);
        assert_eq!(json.render(&vars()).unwrap(), Bytes::from(r#"{"n":3,"s":["ana"]}"#));
        assert_eq!(Payload::compile(None).unwrap().render(&vars()).unwrap(), Bytes::new());
    }
}
