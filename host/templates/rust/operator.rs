//! {{name}}: a weir operator. Upper-cases every value; counts what it saw (checkpointed state).

use weir_sdk::{Config, Context, Operator, Record, Result, operator};

#[derive(serde::Serialize, serde::Deserialize)]
struct Plugin {
    seen: u64,
}

#[operator]
impl Operator for Plugin {
    fn open(_config: &Config, _ctx: &Context) -> Result<Self> {
        Ok(Plugin { seen: 0 })
    }

    fn process(&mut self, mut batch: Vec<Record>) -> Result<Vec<Record>> {
        self.seen += batch.len() as u64;
        for r in &mut batch {
            r.value.make_ascii_uppercase();
        }
        Ok(batch)
    }
}
