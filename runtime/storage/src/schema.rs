//! Log schema files (config/log_schemas/<log-type>.yaml): the fields of a
//! log type, their types, requirements and defaults, and renames between
//! versions. A file is read again whenever its bytes change, so an edit takes
//! effect at the next batch, without a restart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mcp_columns::shape::{Default as FieldDefault, FieldSpec, Kind, Rename, Shape};
use serde::Deserialize;

/// Errors reading schema files.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read schema {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("schema {path}: {detail}")]
    Invalid { path: String, detail: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    log_type: String,
    version: u32,
    #[serde(default)]
    description: String,
    fields: Vec<FieldFile>,
    #[serde(default)]
    changes: Vec<ChangeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    required: bool,
    default: Option<serde_norway::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeFile {
    version: u32,
    #[serde(default)]
    renamed: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    added: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: String,
}

fn kind(name: &str) -> Option<Kind> {
    match name {
        "text" => Some(Kind::Text),
        "integer" => Some(Kind::Integer),
        "real" => Some(Kind::Real),
        "boolean" => Some(Kind::Boolean),
        _ => None,
    }
}

fn default_value(kind: Kind, value: &serde_norway::Value) -> Option<FieldDefault> {
    use serde_norway::Value;
    match (kind, value) {
        (Kind::Text, Value::String(s)) => Some(FieldDefault::Text(s.clone())),
        (Kind::Integer, Value::Number(n)) => n.as_i64().map(FieldDefault::Integer),
        (Kind::Real, Value::Number(n)) => n.as_f64().map(FieldDefault::Real),
        (Kind::Boolean, Value::Bool(b)) => Some(FieldDefault::Boolean(*b)),
        _ => None,
    }
}

/// Parses and checks one schema file's text; `expected_type` is the log type
/// its file name promises.
pub fn parse(text: &str, expected_type: &str, path: &str) -> Result<Shape, SchemaError> {
    let invalid = |detail: String| SchemaError::Invalid { path: path.to_string(), detail };
    let file: SchemaFile = serde_norway::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if file.log_type != expected_type {
        return Err(invalid(format!("log_type '{}' does not match the file name '{expected_type}'", file.log_type)));
    }
    if file.version == 0 {
        return Err(invalid("version starts at 1".into()));
    }
    let _ = file.description;
    let mut fields = Vec::new();
    for f in &file.fields {
        let kind = kind(&f.kind).ok_or_else(|| {
            invalid(format!("field '{}': type '{}' is not text, integer, real or boolean", f.name, f.kind))
        })?;
        if fields.iter().any(|s: &FieldSpec| s.name == f.name) {
            return Err(invalid(format!("field '{}' is declared twice", f.name)));
        }
        let default = match &f.default {
            None => None,
            Some(_) if f.required => {
                return Err(invalid(format!("field '{}' is required and has a default; pick one", f.name)));
            }
            Some(value) => Some(
                default_value(kind, value)
                    .ok_or_else(|| invalid(format!("field '{}': default {value:?} is not {}", f.name, kind.name())))?,
            ),
        };
        fields.push(FieldSpec { name: f.name.clone(), kind, required: f.required, default });
    }
    let mut renames = Vec::new();
    for change in &file.changes {
        if change.version == 0 || change.version > file.version {
            return Err(invalid(format!("change for version {} is outside 1..={}", change.version, file.version)));
        }
        for (from, to) in &change.renamed {
            if !fields.iter().any(|f| &f.name == to) {
                return Err(invalid(format!(
                    "version {} renames '{from}' to '{to}', which is not a declared field",
                    change.version
                )));
            }
            renames.push(Rename { since: change.version, from: from.clone(), to: to.clone() });
        }
    }
    Ok(Shape { log_type: file.log_type, version: file.version, fields, renames })
}

#[derive(Debug)]
struct Cached {
    bytes: Vec<u8>,
    shape: Arc<Shape>,
}

/// The schema files of a search path of folders, reloaded when they change:
/// a log type's file is taken from the first folder that has one, so an
/// operator's folder placed before the bundled one adds log types and
/// overrides bundled ones without losing the rest. Each folder is opened as
/// a capability directory: a log type names a file inside it and nothing
/// else (no `..`, no absolute path, no symlink out).
#[derive(Debug)]
pub struct SchemaFiles {
    dirs: Vec<SchemaDir>,
    cache: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug)]
struct SchemaDir {
    path: PathBuf,
    capability: Option<cap_std::fs::Dir>,
}

impl SchemaDir {
    fn open(path: &Path) -> Self {
        let capability = cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .inspect_err(|e| tracing::debug!(dir = %path.display(), "no schema folder: {e}"))
            .ok();
        SchemaDir { path: path.to_path_buf(), capability }
    }

    /// The bytes of `file` in this folder, `None` when it has no such file.
    fn read(&self, file: &str) -> Result<Option<Vec<u8>>, SchemaError> {
        // A folder made after start (an operator adding the first file) is
        // opened when first needed.
        let opened;
        let dir = match &self.capability {
            Some(dir) => dir,
            None => {
                opened = cap_std::fs::Dir::open_ambient_dir(&self.path, cap_std::ambient_authority()).ok();
                match &opened {
                    Some(dir) => dir,
                    None => return Ok(None),
                }
            }
        };
        match dir.read(file) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SchemaError::Read { path: self.path.join(file).display().to_string(), source }),
        }
    }
}

/// Whether `log_type` can name a schema file: what agent names allow.
pub fn valid_log_type(log_type: &str) -> bool {
    !log_type.is_empty()
        && log_type.len() <= 64
        && log_type.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl SchemaFiles {
    /// The schema files of `dir`; a folder that does not exist (yet) has none.
    pub fn new(dir: &Path) -> Self {
        Self::search(&[dir.to_path_buf()])
    }

    /// The schema files of `dirs`, searched in order.
    pub fn search(dirs: &[PathBuf]) -> Self {
        SchemaFiles { dirs: dirs.iter().map(|d| SchemaDir::open(d)).collect(), cache: Mutex::new(HashMap::new()) }
    }

    /// The folders searched, in order, for messages.
    pub fn describe(&self) -> String {
        self.dirs.iter().map(|d| d.path.display().to_string()).collect::<Vec<_>>().join(", then ")
    }

    /// The current shape of `log_type`, or `None` when no folder has a
    /// schema file for it (its fields are then typed by what most rows of a
    /// batch hold).
    pub fn shape(&self, log_type: &str) -> Result<Option<Arc<Shape>>, SchemaError> {
        let file = format!("{log_type}.yaml");
        if !valid_log_type(log_type) {
            return Err(SchemaError::Invalid {
                path: self.describe(),
                detail: format!("log type '{}' is not 1 to 64 of a-z, 0-9, '-' and '_'", log_type.escape_debug()),
            });
        }
        let mut found = None;
        for dir in &self.dirs {
            if let Some(bytes) = dir.read(&file)? {
                found = Some((dir.path.join(&file).display().to_string(), bytes));
                break;
            }
        }
        let Some((name, bytes)) = found else { return Ok(None) };
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| SchemaError::Invalid { path: name.clone(), detail: "schema cache poisoned".into() })?;
        if let Some(cached) = cache.get(log_type)
            && cached.bytes == bytes
        {
            return Ok(Some(cached.shape.clone()));
        }
        let text = String::from_utf8_lossy(&bytes);
        let shape = Arc::new(parse(&text, log_type, &name)?);
        if cache.contains_key(log_type) {
            tracing::info!(log_type, version = shape.version, path = %name, "schema reloaded");
        }
        cache.insert(log_type.to_string(), Cached { bytes, shape: shape.clone() });
        Ok(Some(shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_type_cannot_name_a_file_outside_the_schema_folder() -> Result<(), Box<dyn std::error::Error>> {
        let outside = tempfile::tempdir()?;
        std::fs::write(outside.path().join("secret.yaml"), "log_type: secret\nversion: 1\nfields: {}\n")?;
        let dir = tempfile::tempdir()?;
        std::os::unix::fs::symlink(outside.path().join("secret.yaml"), dir.path().join("linked.yaml"))?;
        let files = SchemaFiles::new(dir.path());
        let secret = outside.path().join("secret").display().to_string();
        for hostile in ["../secret", "..", secret.as_str(), "a\0b", "Wifi", "a/b", ""] {
            let answer = files.shape(hostile);
            assert!(matches!(answer, Err(SchemaError::Invalid { .. })), "{hostile:?} gave {answer:?}");
        }
        // A symlink inside the folder that points out of it is not followed.
        let linked = files.shape("linked");
        assert!(matches!(linked, Err(SchemaError::Read { .. })), "the symlink out was followed: {linked:?}");
        Ok(())
    }

    fn error_of(text: &str) -> String {
        parse(text, "x", "x.yaml").err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn the_bundled_schemas_parse() -> Result<(), SchemaError> {
        let files = SchemaFiles::new(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/log_schemas"));
        for log_type in ["wifi", "firewall", "dns"] {
            let shape = files.shape(log_type)?;
            assert!(shape.is_some_and(|s| !s.fields.is_empty()), "{log_type}");
        }
        assert!(files.shape("netflow")?.is_none());
        Ok(())
    }

    #[test]
    fn the_first_folder_of_the_search_path_with_a_file_wins() -> Result<(), Box<dyn std::error::Error>> {
        let own = tempfile::tempdir()?;
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/log_schemas");
        std::fs::write(
            own.path().join("bgl.yaml"),
            "log_type: bgl\nversion: 1\nfields:\n  - { name: msg, type: text }\n",
        )?;
        std::fs::write(
            own.path().join("dns.yaml"),
            "log_type: dns\nversion: 9\nfields:\n  - { name: q, type: text }\n",
        )?;
        let files = SchemaFiles::search(&[own.path().to_path_buf(), bundled.clone()]);
        assert_eq!(files.shape("bgl")?.map(|s| s.version), Some(1), "the operator's own type");
        assert_eq!(files.shape("dns")?.map(|s| s.version), Some(9), "the operator's file overrides the bundled one");
        assert!(files.shape("wifi")?.is_some_and(|s| !s.fields.is_empty()), "the bundled types stay");
        assert!(files.describe().ends_with(&bundled.display().to_string()));
        Ok(())
    }

    #[test]
    fn mistakes_in_a_schema_file_are_named() {
        let head = "log_type: x\nversion: 2\nfields:\n";
        for (text, expected) in [
            ("log_type: y\nversion: 1\nfields: []\n".to_string(), "does not match the file name 'x'"),
            (format!("{head}  - {{ name: a, type: txt }}\n"), "type 'txt' is not"),
            (format!("{head}  - {{ name: a, type: integer, default: \"no\" }}\n"), "default"),
            (
                format!("{head}  - {{ name: a, type: integer, required: true, default: 1 }}\n"),
                "required and has a default",
            ),
            (format!("{head}  - {{ name: a, type: text }}\n  - {{ name: a, type: text }}\n"), "declared twice"),
            (
                format!("{head}  - {{ name: a, type: text }}\nchanges:\n  - {{ version: 2, renamed: {{ b: c }} }}\n"),
                "not a declared field",
            ),
            (format!("{head}  - {{ name: a, type: text }}\nchanges:\n  - {{ version: 3 }}\n"), "outside 1..=2"),
            (format!("{head}  - {{ name: a, type: text, colour: red }}\n"), "unknown field `colour`"),
        ] {
            let error = error_of(&text);
            assert!(error.contains(expected), "{error} lacks {expected}");
        }
    }
}
