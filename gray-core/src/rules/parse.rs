//! Reading a rules file: YAML, TOML or JSON into a [`Config`], with errors that name the
//! field at fault.

use std::borrow::Cow;
use std::path::Path;

use super::config::Config;
use super::error::Error;
use super::format::Format;

/// The rules' text, without a leading byte order mark ([`without_bom`]). An empty text (or
/// only white space, or in YAML and TOML only `#` comments) is refused as such, in every
/// format: a file caught half-written, a ConfigMap key with no data or a file whose every
/// line was commented out says so rather than "unexpected end of input" or "missing field
/// `versions`".
fn content(text: &str, format: Format) -> Result<&str, Error> {
    let text = without_bom(text);
    if text.trim().is_empty() {
        return Err(Error::parse(
            format,
            "the rules are empty (a rules file declares at least `versions`)",
        ));
    }
    if format != Format::Json && only_comments(text, format) {
        return Err(Error::parse(
            format,
            "the rules are empty: every line is a comment (a rules file declares at least \
             `versions`)",
        ));
    }
    Ok(text)
}

/// Whether every line of `text` is blank or a `#` comment (in YAML, also a `---` or `...`
/// document marker, which stands at the start of its line). Such a text holds no value in
/// either format, so no parse is needed to tell: a `#` that begins a line is a comment
/// wherever no value has begun.
fn only_comments(text: &str, format: Format) -> bool {
    text.lines().all(|line| {
        let line = match format {
            Format::Yaml => ["---", "..."]
                .iter()
                .find_map(|marker| {
                    let rest = line.strip_prefix(marker)?;
                    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then_some(rest)
                })
                .unwrap_or(line),
            _ => line,
        };
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    })
}

/// `text` without the byte order mark (U+FEFF) some Windows editors write at the start of a
/// UTF-8 file. The YAML and TOML readers skip one and serde_json does not (RFC 8259 lets a
/// reader ignore it), so without this a rules file saved so reads in two formats and in
/// JSON fails with "expected value at line 1 column 1", and an empty or commented-out one
/// is not told as such.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Deserializes a config, and when that fails, where: the field the deserializer was in, as
/// validation names fields (`routes[0].match.headers`), or `None` at the top level (a
/// syntax error before the first field, a missing `versions`). A key with a control
/// character in it (a line break, say) is told escaped, so the error stays one log line.
fn tracked<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Config, (D::Error, Option<String>)> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().iter().next().is_some().then(|| {
            let path = e.path().to_string();
            match path.contains(char::is_control) {
                true => path.escape_debug().to_string(),
                false => path,
            }
        });
        (e.into_inner(), field)
    })
}

/// serde-saphyr's messages for a file's author, with its structural ones in the words of a
/// rules file rather than of a YAML parser's events: "expected sequence start" where a list
/// is wanted and something else was written (`versions: stable`) becomes "expected a list".
struct YamlMessages;

impl serde_saphyr::MessageFormatter for YamlMessages {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> Cow<'a, str> {
        let wanted = match err {
            serde_saphyr::Error::Unexpected { expected, .. } => match *expected {
                "sequence start" => Some("expected a list (`[a, b]`, or `- item` lines)"),
                "mapping start" => {
                    Some("expected a mapping (`{ key: value }`, or `key: value` lines)")
                }
                "string scalar" => Some("expected a string"),
                _ => None,
            },
            _ => None,
        };
        match wanted {
            Some(text) => Cow::Borrowed(text),
            None => serde_saphyr::UserMessageFormatter.format_message(err),
        }
    }
}

impl Config {
    /// Parses a YAML rules file.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        let text = content(text, Format::Yaml)?;
        // Percentages are read as any value (see `percent`): a `.nan` or `.inf` among them
        // goes on as a number, for validation to refuse naming its route and field, as
        // TOML's `nan` and `inf` do.
        let options = serde_saphyr::options! {
            non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        };
        // Told in the words of `YamlMessages`, serde-saphyr's for a file's author; its
        // default ones are for the program's ("set DuplicateKeyPolicy in Options", "use
        // from_str_multiple").
        let mut field = None;
        serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            tracked(de).map_err(|(e, at)| {
                field = at;
                e
            })
        })
        .map_err(|e| Error::parse_at(Format::Yaml, field, e.render_with_formatter(&YamlMessages)))
    }

    /// Parses a TOML rules file.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let text = content(text, Format::Toml)?;
        let de = toml::Deserializer::parse(text).map_err(|e| Error::parse(Format::Toml, e))?;
        tracked(de).map_err(|(e, field)| Error::parse_at(Format::Toml, field, e))
    }

    /// Parses a JSON rules file. A byte order mark before it is skipped, as the YAML and
    /// TOML readers skip one, so a file saved by a Windows editor reads in every format.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let text = content(text, Format::Json)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let config =
            tracked(&mut de).map_err(|(e, field)| Error::parse_at(Format::Json, field, e))?;
        // What `serde_json::from_str` checks after the value: nothing but white space follows.
        de.end().map_err(|e| Error::parse(Format::Json, e))?;
        Ok(config)
    }

    /// Parses `text` in the given format.
    pub fn from_str_as(text: &str, format: Format) -> Result<Self, Error> {
        match format {
            Format::Yaml => Self::from_yaml(text),
            Format::Toml => Self::from_toml(text),
            Format::Json => Self::from_json(text),
        }
    }

    /// Reads and parses a rules file, choosing the format by extension
    /// (`.yaml`/`.yml`, `.toml`, `.json`).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let format = Format::from_path(path).ok_or_else(|| Error::UnknownFormat {
            path: path.to_path_buf(),
        })?;
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str_as(&text, format).map_err(|e| e.in_file(path))
    }
}
