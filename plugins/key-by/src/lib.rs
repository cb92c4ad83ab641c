//! Built-in `key-by` operator: gives each record the key found at `field` of its JSON value (a
//! string as its bytes, any other JSON value as its JSON text), so a `hash` edge after it
//! brings equal keys to one subtask (Flink's `keyBy`).
//!
//! Invariant: records pass unchanged but for their key, in order; a record whose value is not
//! a JSON object with that field is an error naming the field (use `on_error` to divert it).

use serde::{Deserialize, Serialize};
use weir_sdk::{Config, Context, Operator, Record, Result, anyhow, operator};

#[derive(Serialize, Deserialize)]
struct KeyBy {
    /// Dotted path of the key in the JSON value.
    path: Vec<String>,
}

#[operator]
impl Operator for KeyBy {
    fn open(config: &Config, _ctx: &Context) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            field: String,
        }
        let Settings { field } = config.read()?;
        if field.split('.').any(str::is_empty) {
            return Err(anyhow!(
                "`field` = {field:?} is not a dotted path such as \"user\" or \"user.id\""
            ));
        }
        Ok(KeyBy {
            path: field.split('.').map(str::to_owned).collect(),
        })
    }

    fn process(&mut self, mut batch: Vec<Record>) -> Result<Vec<Record>> {
        for r in &mut batch {
            let doc: serde_json::Value = serde_json::from_slice(&r.value).map_err(|e| {
                anyhow!(
                    "a value is not JSON ({e}), so it has no `{}`",
                    self.path.join(".")
                )
            })?;
            let mut at = &doc;
            for part in &self.path {
                at = at
                    .get(part)
                    .ok_or_else(|| anyhow!("a value has no field `{}`", self.path.join(".")))?;
            }
            r.key = Some(match at {
                serde_json::Value::String(s) => s.clone().into_bytes(),
                other => other.to_string().into_bytes(),
            });
        }
        Ok(batch)
    }
}
