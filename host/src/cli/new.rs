//! `weir new NAME --lang L --kind K`: a ready-to-build plugin project from a template, with a
//! README of the commands to build and run it and a pipeline file that runs it.
//!
//! Invariant: never writes into an existing directory; every template is embedded in the
//! binary, so `weir new` works from anywhere.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    C,
    Python,
    Js,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Source,
    Operator,
    Sink,
    /// A stateless filter: one function (Rust).
    Filter,
    /// A stateless map of values: one function (Rust).
    Map,
}

impl Kind {
    /// The plugin kind it builds: a filter or a map is an operator.
    fn plugin_kind(self) -> Kind {
        match self {
            Kind::Filter | Kind::Map => Kind::Operator,
            k => k,
        }
    }
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// Name of the plugin and of the directory to create.
    pub name: String,
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    #[arg(long, value_enum, default_value = "operator")]
    pub kind: Kind,
    /// Create it in this directory instead of ./NAME.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The weir checkout whose WIT and guest support the project builds against.
    #[arg(long, env = "WEIR_HOME", default_value = default_home())]
    pub weir_home: PathBuf,
}

fn default_home() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/..")
}

/// (path in the project, template text) for `lang` and `kind`.
fn files(lang: Lang, kind: Kind) -> Vec<(&'static str, &'static str)> {
    macro_rules! t {
        ($p:literal) => {
            include_str!(concat!("../../templates/", $p))
        };
    }
    let pick = |source, operator, sink| match kind.plugin_kind() {
        Kind::Source => source,
        Kind::Sink => sink,
        _ => operator,
    };
    match lang {
        Lang::Rust => vec![
            ("Cargo.toml", t!("rust/Cargo.toml")),
            ("build.sh", t!("rust/build.sh")),
            (
                "src/lib.rs",
                match kind {
                    Kind::Filter => t!("rust/filter.rs"),
                    Kind::Map => t!("rust/map.rs"),
                    _ => pick(
                        t!("rust/source.rs"),
                        t!("rust/operator.rs"),
                        t!("rust/sink.rs"),
                    ),
                },
            ),
        ],
        Lang::C => vec![
            ("build.sh", t!("c/build.sh")),
            (
                "plugin.c",
                pick(t!("c/source.c"), t!("c/operator.c"), t!("c/sink.c")),
            ),
        ],
        Lang::Python => vec![
            ("build.sh", t!("python/build.sh")),
            (
                "app.py",
                pick(
                    t!("python/source.py"),
                    t!("python/operator.py"),
                    t!("python/sink.py"),
                ),
            ),
        ],
        Lang::Js => vec![
            ("build.sh", t!("js/build.sh")),
            (
                "app.js",
                pick(t!("js/source.js"), t!("js/operator.js"), t!("js/sink.js")),
            ),
        ],
    }
}

/// The contract a template builds against: the newest one there is for its language and kind,
/// so windows, timers and keyed state work in every new operator.
struct Contract {
    /// The WIT directory, relative to the weir checkout.
    wit: &'static str,
    /// Its package version, for the build script's comment.
    version: &'static str,
    /// Extra C compiler flags (the C SDK's packed and event-time parts).
    cflags: &'static str,
}

impl Contract {
    fn newest(lang: Lang, kind: Kind) -> Self {
        // weir:plugin@0.3.0 (config as one JSON document) for every SDK that reads it into a
        // type or an object; C reads the raw WIT, on 0.2.0 (operators, packed sources: event
        // time, keyed state) and 0.1.0 (sinks).
        let (wit, version) = match (lang, kind) {
            (Lang::C, Kind::Sink) => ("wit", "weir:plugin@0.1.0"),
            (Lang::C, _) => ("wit/v0.2", "weir:plugin@0.2.0"),
            _ => ("wit/v0.3", "weir:plugin@0.3.0"),
        };
        Contract {
            wit,
            version,
            // The C SDK's timers, late output and keyed state are the operator world's.
            cflags: match (lang, kind) {
                (Lang::C, Kind::Operator) => "-DWEIR_PACKED -DWEIR_EVENT_TIME ",
                (Lang::C, _) => "-DWEIR_PACKED ",
                _ => "",
            },
        }
    }

    /// The world a `kind` plugin targets: every SDK exchanges packed batches (one buffer per
    /// batch), so `packed-operator-plugin` and the like.
    fn world(&self, kind: &str) -> String {
        format!("packed-{kind}-plugin")
    }
}

/// A pipeline that runs the new plugin, and what it does, in words.
fn pipeline(name: &str, kind: Kind) -> (String, &'static str) {
    match kind {
        Kind::Filter | Kind::Map => (
            pipeline(name, Kind::Operator).0,
            "three words through the function, printed",
        ),
        Kind::Source => (
            format!(
                "[node.src]\nkind = \"source\"\nplugin = \"{name}.wasm\"\nconfig = {{ count = 5 }}\n\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"src\"\n"
            ),
            "five records from the source, printed",
        ),
        Kind::Operator => (
            format!(
                "[node.src]\nkind = \"source\"\nplugin = \"sequence\"\nconfig = {{ values = [\"hello\", \"plugin\", \"world\"] }}\n\n[node.op]\nkind = \"operator\"\nplugin = \"{name}.wasm\"\ninput = \"src\"\n\n[node.out]\nkind = \"sink\"\nplugin = \"stdout\"\ninput = \"op\"\n"
            ),
            "three words through the operator, printed",
        ),
        Kind::Sink => (
            format!(
                "[node.src]\nkind = \"source\"\nplugin = \"sequence\"\nconfig = {{ values = [\"hello\", \"plugin\", \"world\"] }}\n\n[node.out]\nkind = \"sink\"\nplugin = \"{name}.wasm\"\ninput = \"src\"\ngrants.stdout = true\n"
            ),
            "three words into the sink, which prints them",
        ),
    }
}

pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "plugin name {name:?}: use lowercase letters, digits, - and _, starting with a letter"
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!(
            "{} already exists: choose another name or --dir",
            dir.display()
        );
    }
    let home = std::path::absolute(&args.weir_home)?;
    let home = home.canonicalize().unwrap_or(home);
    if !home.join("wit/weir.wit").exists() {
        bail!(
            "{} is not a weir checkout (no wit/weir.wit): pass --weir-home or set WEIR_HOME",
            home.display()
        );
    }
    if args.kind != args.kind.plugin_kind() && args.lang != Lang::Rust {
        bail!(
            "--kind {:?} is a Rust function plugin; in this language write an operator (--kind operator), which filters or maps as well",
            args.kind
        );
    }
    let kind_word = format!("{:?}", args.kind.plugin_kind()).to_lowercase();
    let lang_word = match args.lang {
        Lang::Rust => "Rust",
        Lang::C => "C",
        Lang::Python => "Python",
        Lang::Js => "JavaScript",
    };
    let contract = Contract::newest(args.lang, args.kind.plugin_kind());
    let world = contract.world(&kind_word);
    let (pipeline, story) = pipeline(name, args.kind);
    let templates = files(args.lang, args.kind);
    let source_file = templates.last().map(|(p, _)| *p).unwrap_or("the source");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{weir}}", &home.display().to_string())
            .replace("{{world}}", &world)
            .replace("{{wit}}", contract.wit)
            .replace("{{contract}}", contract.version)
            .replace("{{cflags}}", contract.cflags)
            .replace("{{cworld}}", &world.replace('-', "_"))
            .replace("{{kind}}", &kind_word)
            .replace("{{lang}}", lang_word)
            .replace("{{pipeline_story}}", story)
            .replace("{{source_file}}", source_file)
    };
    let readme = include_str!("../../templates/README.md.tmpl");
    let mut all: Vec<(&str, String)> = templates.iter().map(|(p, t)| (*p, fill(t))).collect();
    all.push(("README.md", fill(readme)));
    all.push(("pipeline.toml", pipeline));
    for (path, text) in &all {
        write(&dir.join(path), text)?;
    }
    let made = format!("{:?}", args.kind).to_lowercase();
    println!("created {} ({lang_word} {made} plugin)", dir.display());
    println!(
        "  cd {} && bash build.sh && {} run pipeline.toml",
        dir.display(),
        weir_command()
    );
    Ok(ExitCode::SUCCESS)
}

/// How to call this `weir` from a shell: `weir` when that name on the PATH is this binary, else
/// its full path (so the printed command works as printed, installed or not).
pub fn weir_command() -> String {
    let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return "weir".into();
    };
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("weir"))
            .find(|candidate| candidate.is_file())
    });
    match on_path.and_then(|p| p.canonicalize().ok()) {
        Some(found) if found == me => "weir".into(),
        _ => me.display().to_string(),
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
