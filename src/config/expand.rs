//! `${VAR}`, `${VAR:-default}` and `${file:/path}` expansion.
//!
//! Expansion runs on the parsed YAML tree, string by string, before the tree
//! is deserialised, so an error can name the field it happened in. The
//! environment is passed in as a map: tests never touch the process
//! environment. `$${` writes a literal `${`.
//!
//! Expanded values may be secrets: errors name variables and files, never
//! what they contain, and [`expand_tree`] hands back every value it
//! expanded so later errors can be scrubbed of them (`error_text.rs`).

use std::collections::HashMap;

use serde_yaml::Value;

/// Expands every string in `value`. `path` is the field path of `value`,
/// used in error messages; `expanded` receives each string that held an
/// expansion, and each value substituted into it. Returns `(field path,
/// problem)` on error.
pub fn expand_tree(
    value: &mut Value,
    path: &mut String,
    env: &HashMap<String, String>,
    expanded: &mut Vec<String>,
) -> Result<(), (String, String)> {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                let before = expanded.len();
                *s = expand_into(s, env, expanded).map_err(|e| (path.clone(), e))?;
                if expanded.len() > before {
                    expanded.push(s.clone());
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                expand_tree(item, path, env, expanded)?;
                path.truncate(len);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                match key {
                    Value::String(k) => path.push_str(k),
                    other => path.push_str(&format!("{other:?}")),
                }
                expand_tree(item, path, env, expanded)?;
                path.truncate(len);
            }
        }
        Value::Tagged(tagged) => expand_tree(&mut tagged.value, path, env, expanded)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Expands one string.
pub fn expand_str(input: &str, env: &HashMap<String, String>) -> Result<String, String> {
    expand_into(input, env, &mut Vec::new())
}

/// Expands one string, pushing each substituted value onto `values`.
fn expand_into(
    input: &str,
    env: &HashMap<String, String>,
    values: &mut Vec<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
        } else if let Some(stripped) = after.strip_prefix("${") {
            let end = stripped
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$${` for a literal `${`)".to_string())?;
            let value = resolve(&stripped[..end], env)?;
            out.push_str(&value);
            values.push(value);
            rest = &stripped[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(expr: &str, env: &HashMap<String, String>) -> Result<String, String> {
    if let Some(file) = expr.strip_prefix("file:") {
        if file.is_empty() {
            return Err("`${file:}` needs a path".into());
        }
        let mut text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read file {file:?} named by `${{file:…}}`: {e}"))?;
        // Kubernetes secrets and `echo secret > file` end with a newline that is
        // not part of the secret.
        while text.ends_with('\n') || text.ends_with('\r') {
            text.pop();
        }
        return Ok(text);
    }
    let (name, default) = match expr.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (expr, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`${{{name}}}` is not a valid variable name (letters, digits and `_`)"
        ));
    }
    match (env.get(name), default) {
        (Some(value), _) => Ok(value.clone()),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(format!(
            "environment variable {name} is not set (use `${{{name}:-default}}` for a default)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_variables_defaults_and_literals() {
        let env = env(&[("A", "1"), ("EMPTY", "")]);
        assert_eq!(expand_str("x${A}y", &env).unwrap(), "x1y");
        assert_eq!(expand_str("${B:-dev}", &env).unwrap(), "dev");
        assert_eq!(expand_str("${A:-dev}", &env).unwrap(), "1");
        assert_eq!(expand_str("${EMPTY:-dev}", &env).unwrap(), "");
        assert_eq!(expand_str("$${A} $5", &env).unwrap(), "${A} $5");
        assert_eq!(expand_str("no vars", &env).unwrap(), "no vars");
    }

    #[test]
    fn unset_variable_is_an_error_naming_it() {
        let err = expand_str("${TRUTAC_SECRET}", &env(&[])).unwrap_err();
        assert!(err.contains("TRUTAC_SECRET"), "{err}");
        assert!(expand_str("${A", &env(&[("A", "1")])).is_err());
        assert!(expand_str("${a-b}", &env(&[])).is_err());
    }

    #[test]
    fn reads_files_and_trims_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        let expr = format!("${{file:{}}}", file.display());
        assert_eq!(expand_str(&expr, &env(&[])).unwrap(), "s3cret");
        let missing = format!("${{file:{}}}", dir.path().join("nope").display());
        let err = expand_str(&missing, &env(&[])).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn the_tree_hands_back_what_it_expanded() {
        let mut v: Value =
            serde_yaml::from_str("a: \"Bearer ${T}\"\nb: [\"${U:-dflt}\", plain, \"$${x}\"]\n")
                .unwrap();
        let mut expanded = Vec::new();
        expand_tree(
            &mut v,
            &mut String::new(),
            &env(&[("T", "tok")]),
            &mut expanded,
        )
        .unwrap();
        assert_eq!(expanded, ["tok", "Bearer tok", "dflt", "dflt"]);
    }

    #[test]
    fn tree_errors_name_the_field() {
        let mut v: Value =
            serde_yaml::from_str("routes:\n  - verify:\n      secrets: [ok, \"${NOPE}\"]\n")
                .unwrap();
        let (path, msg) =
            expand_tree(&mut v, &mut String::new(), &env(&[]), &mut Vec::new()).unwrap_err();
        assert_eq!(path, "routes[0].verify.secrets[1]");
        assert!(msg.contains("NOPE"));
    }
}
