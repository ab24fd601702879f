//! The rules file's JSON Schema (feature `schema`): for editors and CI to check a file
//! as it is written, before `explain` or a reload checks it whole.

use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use serde_json::Value;

use super::config::Config;

impl Config {
    /// The JSON Schema (draft 2020-12) of a rules file, in any of its formats: every field,
    /// its type, and its description from these docs. The repository keeps it as
    /// `gray-core/rules.schema.json`; editors that read a `$schema` (VS Code's YAML
    /// extension, say) then complete and check a file as it is typed:
    ///
    /// ```yaml
    /// # yaml-language-server: $schema=rules.schema.json
    /// versions: [stable, canary]
    /// ```
    ///
    /// It says what a file may hold, not all that makes it valid (a route's `to` naming a
    /// declared version, weights summing to 100, a regex that compiles): a file the
    /// schema accepts can still be refused, with every problem named, by
    /// [`Gray::new`](crate::Gray::new), a reload, or the `explain` example. Every rules
    /// file gray accepts is valid by it, written with each value of its own type: gray's
    /// YAML reader also takes a number where a name goes (`versions: [1.0]`) and a quoted
    /// number for a weight (`"90"`), and reads a key left empty (`mirror:`) as absent,
    /// all of which the schema flags — quote the name, unquote the number, leave the key
    /// out.
    ///
    /// ```
    /// let schema = gray_core::Config::json_schema();
    /// assert_eq!(schema["title"], "Config");
    /// assert!(schema["properties"]["routes"].is_object());
    /// ```
    pub fn json_schema() -> serde_json::Value {
        let settings = SchemaSettings::draft2020_12()
            .for_deserialize()
            .with_transform(RecursiveTransform(tidy_description))
            .with_transform(RecursiveTransform(absent_not_null));
        settings
            .into_generator()
            .into_root_schema_for::<Config>()
            .to_value()
    }
}

/// An optional field is left out, not written `null`: `{ "type": ["string", "null"] }`
/// becomes `{ "type": "string" }`, `{ "anyOf": [X, { "type": "null" }] }` becomes X — so
/// that a validator names the field at fault inside an optional object, where "not valid
/// under any of the schemas listed in anyOf" would name only the object.
fn absent_not_null(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".to_owned(), only);
        }
    }
    let null = serde_json::json!({ "type": "null" });
    let inner = match object.get("anyOf") {
        Some(Value::Array(any)) if any.len() == 2 && any[1] == null => any[0].clone(),
        _ => return,
    };
    object.remove("anyOf");
    if let Value::Object(inner) = inner {
        for (key, value) in inner {
            object.entry(key).or_insert(value);
        }
    }
}

/// A description as a reader of the file wants it: the Rust docs' examples (code blocks)
/// and link targets left out.
fn tidy_description(schema: &mut Schema) {
    let Some(text) = schema.get("description").and_then(|d| d.as_str()) else {
        return;
    };
    let tidy = tidy(text);
    if tidy.is_empty() {
        schema.remove("description");
    } else {
        schema.insert("description".to_owned(), tidy.into());
    }
}

fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        out.push_str(&unlink(line));
        out.push('\n');
    }
    out.trim().to_owned()
}

/// `[`Gray::new`](crate::Gray::new)` → `` `Gray::new` ``; other brackets stay.
fn unlink(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|i| open + i) else {
            break;
        };
        let target = rest[close + 1..]
            .strip_prefix('(')
            .and_then(|after| after.find(')'));
        let inside = &rest[open + 1..close];
        out.push_str(&rest[..open]);
        match target {
            Some(end) => {
                out.push_str(inside);
                rest = &rest[close + 2 + end + 1..];
            }
            // A link to an item by its name alone: [`Inherit::Never`].
            None if inside.len() > 1 && inside.starts_with('`') && inside.ends_with('`') => {
                out.push_str(inside);
                rest = &rest[close + 1..];
            }
            None => {
                out.push_str(&rest[open..=close]);
                rest = &rest[close + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use schemars::Schema;
    use serde_json::json;

    use super::{absent_not_null, tidy, unlink};

    fn optional(schema: serde_json::Value) -> serde_json::Value {
        let mut schema = Schema::try_from(schema).expect("a schema object");
        absent_not_null(&mut schema);
        schema.to_value()
    }

    /// An `Option`'s "or null" goes, in either of the forms schemars writes it; a choice
    /// between other schemas stays as it is.
    #[test]
    fn only_an_options_null_is_taken_out() {
        assert_eq!(
            optional(json!({ "type": ["string", "null"], "description": "d" })),
            json!({ "type": "string", "description": "d" })
        );
        assert_eq!(
            optional(json!({ "type": ["string", "integer", "null"] })),
            json!({ "type": ["string", "integer"] })
        );
        assert_eq!(
            optional(
                json!({ "anyOf": [{ "$ref": "#/$defs/X" }, { "type": "null" }], "description": "d" })
            ),
            json!({ "$ref": "#/$defs/X", "description": "d" })
        );
        for kept in [
            json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }] }),
            json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }, { "type": "null" }] }),
            json!({ "anyOf": [{ "type": "null" }] }),
        ] {
            assert_eq!(optional(kept.clone()), kept);
        }
    }

    #[test]
    fn links_lose_their_targets_and_code_blocks_go() {
        assert_eq!(
            unlink("see [`Gray::new`](crate::Gray::new), [a] and `[0-9]+` (b)"),
            "see `Gray::new`, [a] and `[0-9]+` (b)"
        );
        assert_eq!(
            unlink("(default [`Inherit::Never`])"),
            "(default `Inherit::Never`)"
        );
        assert_eq!(unlink("[x](y"), "[x](y");
        // Only a name in backticks is an item's link; a lone or unpaired backtick is text.
        assert_eq!(unlink("[`] [`a] [b`] [``]"), "[`] [`a] [b`] ``");
        assert_eq!(tidy("One.\n\n```\nlet x = 1;\n```\nTwo.\n"), "One.\n\nTwo.");
    }
}
