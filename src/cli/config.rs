//! `pecbox config show`: the effective configuration as TOML, every value followed by
//! where it comes from: the override file, the factory file (or the embedded demo
//! default), or pecbox's built-in default.

use std::path::Path;

use toml_edit::TableLike;

use crate::config::{Config, EMBEDDED};

/// Where the layers' values come from, as the comments say it.
struct Origins<'a> {
    factory: &'a toml::Table,
    overrides: Option<&'a toml::Table>,
    factory_label: String,
    override_label: String,
}

impl Origins<'_> {
    fn of(&self, path: &[&str]) -> &str {
        let has = |layer: &toml::Table| {
            let mut table = layer;
            for (i, key) in path.iter().enumerate() {
                match table.get(*key) {
                    Some(toml::Value::Table(t)) if i + 1 < path.len() => table = t,
                    Some(_) if i + 1 == path.len() => return true,
                    _ => return false,
                }
            }
            false
        };
        if self.overrides.is_some_and(has) {
            &self.override_label
        } else if has(self.factory) {
            &self.factory_label
        } else {
            "built-in default"
        }
    }
}

fn absolute(path: &Path) -> String {
    crate::config::display_path(path).display().to_string()
}

/// A key as TOML writes it: bare when it can be.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

/// The effective configuration, with its sources.
pub fn show(config: &Config) -> String {
    let layers = &config.layers;
    let factory_name = match &config.source {
        Some(path) => absolute(path),
        None if layers.factory_origin == EMBEDDED => format!("the {EMBEDDED}"),
        None => layers.factory_origin.clone(),
    };
    let override_name = absolute(
        layers
            .overrides
            .as_ref()
            .map(|(p, _)| p.clone())
            .unwrap_or_else(|| config.override_path())
            .as_path(),
    );
    let origins = Origins {
        factory: &layers.factory,
        overrides: layers.overrides.as_ref().map(|(_, t)| t),
        factory_label: format!("from {factory_name}"),
        override_label: format!("from {override_name}"),
    };
    let mut merged = layers.factory.clone();
    if let Some((_, over)) = &layers.overrides {
        crate::config::merge(&mut merged, over);
    }
    let defaults = Config::builtin_defaults();
    let order = toml_edit::ser::to_document(config).ok();

    let mut out = String::new();
    out.push_str(
        "# The configuration in effect: the factory layer, overridden key by key by the\n",
    );
    out.push_str("# override layer; each value says where it comes from.\n");
    out.push_str(&format!("# factory layer: {factory_name}\n"));
    if layers.overrides.is_some() {
        out.push_str(&format!("# override:      {override_name}\n"));
    } else if config.override_is_factory() {
        out.push_str("# override:      none (the factory file is itself <data_dir>/pecbox.toml)\n");
    } else {
        out.push_str(&format!("# override:      {override_name} (none yet)\n"));
    }
    let base = match config.source.as_deref().and_then(Path::parent) {
        Some(dir) => absolute(dir),
        None => format!(
            "the current folder ({})",
            std::env::current_dir().unwrap_or_default().display()
        ),
    };
    out.push_str(&format!("# relative paths resolve against {base}\n"));
    section(
        &mut out,
        &mut Vec::new(),
        Some(&merged),
        Some(&defaults),
        order.as_ref().map(|d| d.as_table() as &dyn TableLike),
        &origins,
    );
    out
}

/// Prints the table at `path` (merged layers, built-in defaults) then its sub-tables;
/// keys in the order of the configuration's own fields, then the others sorted.
fn section(
    out: &mut String,
    path: &mut Vec<String>,
    merged: Option<&toml::Table>,
    defaults: Option<&toml::Table>,
    order: Option<&dyn TableLike>,
    origins: &Origins,
) {
    let present = |k: &str| {
        merged.is_some_and(|m| m.contains_key(k)) || defaults.is_some_and(|d| d.contains_key(k))
    };
    let mut keys: Vec<String> = order
        .map(|o| {
            o.iter()
                .map(|(k, _)| k.to_string())
                .filter(|k| present(k))
                .collect()
        })
        .unwrap_or_default();
    for k in merged
        .into_iter()
        .flat_map(|m| m.keys())
        .chain(defaults.into_iter().flat_map(|d| d.keys()))
    {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    let mut leaves: Vec<(String, String)> = Vec::new();
    let mut tables = Vec::new();
    for k in &keys {
        let m = merged.and_then(|m| m.get(k));
        let d = defaults.and_then(|d| d.get(k));
        let sub_order = order.and_then(|o| o.get(k)).and_then(|i| i.as_table_like());
        match (m, d) {
            // Tables become sections; an empty one only at the top (`[tls]`).
            (Some(toml::Value::Table(mt)), d) if !mt.is_empty() || path.is_empty() => {
                tables.push((k, Some(mt), d.and_then(toml::Value::as_table), sub_order));
            }
            (None, Some(toml::Value::Table(dt))) if !dt.is_empty() || path.is_empty() => {
                tables.push((k, None, Some(dt), sub_order));
            }
            (Some(v), _) | (None, Some(v)) => {
                let mut at: Vec<&str> = path.iter().map(String::as_str).collect();
                at.push(k);
                let from = if m.is_some() {
                    origins.of(&at).to_string()
                } else {
                    "built-in default".to_string()
                };
                leaves.push((format!("{} = {v}", key(k)), from));
            }
            (None, None) => {}
        }
    }
    if !path.is_empty() {
        let name: Vec<String> = path.iter().map(|k| key(k)).collect();
        out.push_str(&format!("\n[{}]\n", name.join(".")));
    }
    let width = leaves
        .iter()
        .map(|(l, _)| l.chars().count())
        .filter(|w| *w <= 44)
        .max()
        .unwrap_or(0);
    if leaves.is_empty() && tables.is_empty() && !path.is_empty() {
        out.push_str("# nothing set\n");
    }
    for (line, from) in leaves {
        let pad = width.saturating_sub(line.chars().count());
        out.push_str(&format!("{line}{:pad$}  # {from}\n", ""));
    }
    for (k, m, d, o) in tables {
        path.push(k.clone());
        section(out, path, m, d, o, origins);
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_says_where_it_comes_from() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let factory = dir.path().join("etc/pecbox.toml");
        std::fs::write(
            &factory,
            "[provider]\nname = \"Fabbrica\"\ndomains = [\"pec.x.test\"]\nhostname = \"mx\"\n\
             [storage]\ndata_dir = \"../data\"\n[listen]\nsmtp = \"0.0.0.0:25\"\n\
             [delivery]\nroutes = { \"pec.a.test\" = \"a:25\" }\n",
        )
        .unwrap();
        let over = dir.path().join("data/pecbox.toml");
        std::fs::write(
            &over,
            "[provider]\nname = \"Sovrascritto\"\n[listen]\nsmtp = \"\"\n\
             [delivery.routes]\n\"pec.b.test\" = \"b:25\"\n",
        )
        .unwrap();
        let config = Config::load(&factory).unwrap();
        let text = show(&config);
        let f = format!("# from {}", factory.display());
        let o = format!("# from {}", over.display());
        let line = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("{start} in:\n{text}"))
                .to_string()
        };
        assert!(line("name = \"Sovrascritto\"").ends_with(&o), "{text}");
        assert!(line("hostname = \"mx\"").ends_with(&f), "{text}");
        assert!(line("smtp = \"\"").ends_with(&o), "{text}");
        assert!(line("\"pec.a.test\" = \"a:25\"").ends_with(&f), "{text}");
        assert!(line("\"pec.b.test\" = \"b:25\"").ends_with(&o), "{text}");
        assert!(
            line("cache_mb = 32").ends_with("# built-in default"),
            "{text}"
        );
        assert!(
            line("months = 30").ends_with("# built-in default"),
            "{text}"
        );
        assert!(text.contains("\n[delivery.routes]\n"), "{text}");
        assert!(
            text.contains("\n[tls]\n# nothing set\n\n[signing]\n"),
            "{text}"
        );
        // Struct order: name before domains before hostname.
        let at = |s: &str| text.find(s).unwrap();
        assert!(at("name = ") < at("domains = ") && at("domains = ") < at("hostname = "));
        // The output is the effective configuration itself.
        let again = Config::parse(&text, "shown").unwrap();
        assert_eq!(again.provider.name, "Sovrascritto");
        assert_eq!(again.listen.smtp, None);
        assert_eq!(again.delivery.routes.len(), 2);
        assert_eq!(again.limits.connections, config.limits.connections);
    }

    #[test]
    fn the_demo_says_so() {
        let config = Config::parse(crate::config::DEMO, EMBEDDED).unwrap();
        let text = show(&config);
        assert!(
            text.contains("name = \"pecbox demo\"  # from the embedded demo default")
                || text.lines().any(|l| l.starts_with("name = \"pecbox demo\"")
                    && l.ends_with("# from the embedded demo default")),
            "{text}"
        );
        assert!(text.contains("# relative paths resolve against the current folder"));
    }
}
