//! What a log type's rows must look like: the fields a schema file declares,
//! their types, requirements and defaults, and the renames between schema
//! versions. The host reads schema files into a [`Shape`]; the batch builder
//! normalises every row to it.

use std::borrow::Cow;

use crate::builder::Scalar;

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text.
    Text,
    /// A whole number.
    Integer,
    /// A real number; whole numbers are accepted too.
    Real,
    /// True or false.
    Boolean,
}

impl Kind {
    /// The name used in messages and schema files.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Integer => "integer",
            Kind::Real => "real",
            Kind::Boolean => "boolean",
        }
    }
}

/// A field's default value.
#[derive(Debug, Clone, PartialEq)]
pub enum Default {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A real number.
    Real(f64),
    /// True or false.
    Boolean(bool),
}

/// One declared field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// The field's current name.
    pub name: String,
    /// Its type.
    pub kind: Kind,
    /// A row without it is refused.
    pub required: bool,
    /// The value a row without it gets, if any.
    pub default: Option<Default>,
}

/// A field renamed between schema versions: rows older than `since` call it
/// `from`; from `since` on it is `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The first schema version with the new name.
    pub since: u32,
    /// The old name.
    pub from: String,
    /// The new name.
    pub to: String,
}

/// The current shape of a log type's rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Shape {
    /// The log type.
    pub log_type: String,
    /// The current schema version.
    pub version: u32,
    /// The declared fields.
    pub fields: Vec<FieldSpec>,
    /// Renames, in any order.
    pub renames: Vec<Rename>,
}

fn fits(kind: Kind, value: &Scalar<'_>) -> bool {
    matches!(
        (kind, value),
        (Kind::Text, Scalar::Text(_))
            | (Kind::Integer, Scalar::Integer(_))
            | (Kind::Real, Scalar::Integer(_) | Scalar::Real(_))
            | (Kind::Boolean, Scalar::Boolean(_))
    )
}

fn default_scalar(value: &Default) -> Scalar<'static> {
    match value {
        Default::Text(t) => Scalar::Text(Cow::Owned(t.clone())),
        Default::Integer(i) => Scalar::Integer(*i),
        Default::Real(r) => Scalar::Real(*r),
        Default::Boolean(b) => Scalar::Boolean(*b),
    }
}

impl Shape {
    /// Brings one parsed row, written under `row_version`, to the current
    /// version: old names renamed, declared types checked, required fields
    /// demanded and defaults filled in.
    pub(crate) fn normalise<'a>(
        &self,
        row: &mut Vec<(Cow<'a, str>, Scalar<'a>)>,
        row_version: u32,
    ) -> Result<(), String> {
        if row_version < self.version {
            let mut renames: Vec<&Rename> = self.renames.iter().filter(|r| r.since > row_version).collect();
            renames.sort_by_key(|r| r.since);
            for rename in renames {
                for (name, _) in row.iter_mut().filter(|(name, _)| *name == rename.from.as_str()) {
                    *name = Cow::Owned(rename.to.clone());
                }
            }
        }
        for spec in &self.fields {
            match row.iter().position(|(name, _)| *name == spec.name.as_str()) {
                Some(index) if !matches!(row[index].1, Scalar::Null) => {
                    let value = &row[index].1;
                    if !fits(spec.kind, value) {
                        return Err(format!(
                            "field '{}' must be {} under {} schema v{}, found {}",
                            spec.name,
                            spec.kind.name(),
                            self.log_type,
                            self.version,
                            value.kind_name()
                        ));
                    }
                }
                present => {
                    if spec.required {
                        return Err(format!(
                            "required field '{}' is missing (schema {} v{})",
                            spec.name, self.log_type, self.version
                        ));
                    }
                    if let Some(default) = &spec.default {
                        match present {
                            Some(index) => row[index].1 = default_scalar(default),
                            None => row.push((Cow::Owned(spec.name.clone()), default_scalar(default))),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The declared type of `name`, if declared.
    pub(crate) fn kind_of(&self, name: &str) -> Option<Kind> {
        self.fields.iter().find(|f| f.name == name).map(|f| f.kind)
    }
}
