//! The TOML file as written: every key optional, unknown keys refused.

use qos_core::thesis::{ChronosInfBand, MarathonUnderThreshold};
use serde::Deserialize;

use super::error::{ConfigError, WHOLE_FILE, from_toml};
use super::sections::{ControlConfig, LimitsConfig, StorageConfig};
use super::settings::Settings;

/// The file: the settings the command line also has and the thesis constants at the top level,
/// the optional sections below.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct FileConfig {
    /// The keys the command line has as well (read in a pass of their own: see [`parse_file`]).
    #[serde(skip)]
    pub(super) settings: Settings,
    pub(super) cpu_max: Option<f64>,
    pub(super) cpu_min: Option<f64>,
    pub(super) cpu_increment: Option<f64>,
    pub(super) cpu_decrement: Option<f64>,
    pub(super) monitoring_period: Option<f64>,
    pub(super) deployment_time: Option<f64>,
    pub(super) sleeping_time: Option<f64>,
    pub(super) thesis: Option<ThesisExtra>,
    pub(super) predictive: Option<toml::Table>,
    pub(super) control: Option<ControlConfig>,
    pub(super) limits: Option<LimitsConfig>,
    pub(super) storage: Option<StorageConfig>,
}

/// The `[thesis]` section: the variants where the thesis text and code disagree.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ThesisExtra {
    pub(super) chronos_inf_band: Option<ChronosInfBand>,
    pub(super) marathon_under: Option<MarathonUnderThreshold>,
    pub(super) sup_margin: Option<f64>,
    pub(super) missing_cpu_as_zero: Option<bool>,
}

/// Parses the file; an error names the key it is about (`listen`, `control.period`, an unknown
/// `limits.skew`), or `config` for text that is not TOML.
///
/// The top level is read twice, into [`Settings`] and into the rest of [`FileConfig`] (serde's
/// `flatten` would lose both `deny_unknown_fields` and the path of a bad value), so its keys
/// are checked here against both structs' own lists of them; the sections refuse unknown keys
/// themselves.
pub(super) fn parse_file(text: &str) -> Result<FileConfig, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
        key: WHOLE_FILE.to_owned(),
        message: e.message().trim().to_owned(),
    })?;
    let known = [keys_of::<Settings>(), keys_of::<FileConfig>()].concat();
    if let Some(key) = table.keys().find(|k| !known.contains(&k.as_str())) {
        let expected = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>();
        return Err(ConfigError {
            key: key.clone(),
            message: format!(
                "unknown field `{key}`, expected one of {}",
                expected.join(", ")
            ),
        });
    }
    let top = toml::Value::Table(table);
    let mut file: FileConfig =
        serde_path_to_error::deserialize(top.clone()).map_err(|e| from_toml(None, &e))?;
    file.settings = serde_path_to_error::deserialize(top).map_err(|e| from_toml(None, &e))?;
    Ok(file)
}

/// The keys serde reads into the struct `T`: the field names its derived `Deserialize` hands to
/// `deserialize_struct`, caught by a deserializer that reads nothing else.
fn keys_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor, value};

    struct Keys<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Keys<'_> {
        type Error = value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, value::Error> {
            Err(value::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, value::Error> {
            *self.0 = fields;
            Err(value::Error::custom("only the keys are read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut keys: &'static [&'static str] = &[];
    // The error is the point: the keys were caught on the way.
    let _ = T::deserialize(Keys(&mut keys));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_top_level_key_is_known_once() {
        let settings = keys_of::<Settings>();
        let rest = keys_of::<FileConfig>();
        assert!(settings.contains(&"listen") && settings.contains(&"insecure"));
        assert!(rest.contains(&"cpu_max") && rest.contains(&"storage"));
        assert!(!rest.contains(&"settings"), "{rest:?}");
        assert!(
            settings.iter().all(|k| !rest.contains(k)),
            "{settings:?} {rest:?}"
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_the_known_ones() {
        let e = parse_file("listen = \"127.0.0.1:0\"\ncpu_mx = 3").unwrap_err();
        assert_eq!(e.key, "cpu_mx");
        assert!(
            e.message
                .starts_with("unknown field `cpu_mx`, expected one of `listen`"),
            "{e}"
        );
        assert!(e.message.contains("`cpu_max`"), "{e}");
        let f = parse_file("listen = \"127.0.0.1:0\"\ninsecure = true\ncpu_max = 2.0").unwrap();
        assert_eq!(f.settings.listen.as_deref(), Some("127.0.0.1:0"));
        assert!(f.settings.insecure);
        assert_eq!(f.cpu_max, Some(2.0));
    }
}
