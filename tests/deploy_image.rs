//! The container image's build stage, without a container engine: the
//! build context is what `.dockerignore` lets through, the build stage's
//! `COPY` lines lay it out as in the image, and its `cargo build` command
//! must build the binary from exactly those files.
//!
//! The copy is built with the Dockerfile's own cargo command minus
//! `--release` (a debug build finds the same missing files and compiles
//! faster), in a fixed target directory, `target/docker-context/`, so only
//! the first run compiles the dependencies. Copies keep their source's
//! modification time, so an unchanged tree is not rebuilt either.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `.dockerignore` as Docker reads it: patterns in order, `!` re-includes,
/// the last pattern that matches a path decides, and a pattern that
/// matches a directory matches everything under it.
struct DockerIgnore {
    patterns: Vec<(bool, String)>,
}

impl DockerIgnore {
    fn read(path: &Path) -> DockerIgnore {
        let text = std::fs::read_to_string(path).unwrap();
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| match l.strip_prefix('!') {
                Some(p) => (false, p.trim_matches('/').to_string()),
                None => (true, l.trim_matches('/').to_string()),
            })
            .collect();
        DockerIgnore { patterns }
    }

    fn excluded(&self, relative: &str) -> bool {
        let mut excluded = false;
        for (exclude, pattern) in &self.patterns {
            // The path itself or one of its parent directories.
            let mut prefix = String::new();
            let matched = relative.split('/').any(|part| {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                glob(pattern, &prefix)
            });
            if matched {
                excluded = *exclude;
            }
        }
        excluded
    }

    /// Whether a `!` pattern may re-include something under `dir`.
    fn may_include_under(&self, dir: &str) -> bool {
        self.patterns
            .iter()
            .any(|(exclude, p)| !exclude && p.starts_with(&format!("{dir}/")))
    }
}

/// Go's `filepath.Match` for `*` and `?` (neither crosses a `/`).
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != b'/')
                .any(|i| go(rest, &n[i..])),
            Some((b'?', rest)) => n.first().is_some_and(|c| *c != b'/') && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Every file of the build context, relative to the repository root.
fn context_files(ignore: &DockerIgnore) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(root().join(&dir)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let excluded = ignore.excluded(&relative);
            if entry.file_type().unwrap().is_dir() {
                if !excluded || ignore.may_include_under(&relative) {
                    pending.push(relative);
                }
            } else if !excluded {
                files.push(relative);
            }
        }
    }
    files.sort();
    files
}

/// Copies a file keeping its modification time (so cargo sees it unchanged).
fn copy_file(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
    let modified = std::fs::metadata(from).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(to)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

/// The instructions of the Dockerfile's first (build) stage, continuation
/// lines joined.
fn build_stage(dockerfile: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stage = Vec::new();
    let mut froms = 0;
    for line in joined {
        let (instruction, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let instruction = instruction.to_ascii_uppercase();
        if instruction == "FROM" {
            froms += 1;
            if froms > 1 {
                break;
            }
        }
        stage.push((instruction, rest.trim().to_string()));
    }
    stage
}

/// Lays out the context as the build stage's `COPY` lines do, under `into`
/// (the stage's WORKDIR); returns the cargo command of its `RUN`.
fn apply_build_stage(stage: &[(String, String)], context: &[String], into: &Path) -> Vec<String> {
    let mut cargo = None;
    for (instruction, rest) in stage {
        match instruction.as_str() {
            "COPY" => {
                let args: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|a| !a.starts_with("--"))
                    .collect();
                let (dest, sources) = args.split_last().expect("COPY has a destination");
                for source in sources {
                    let source = source.trim_end_matches('/');
                    let under: Vec<&String> = context
                        .iter()
                        .filter(|f| *f == source || f.starts_with(&format!("{source}/")))
                        .collect();
                    assert!(
                        !under.is_empty(),
                        "COPY {source}: not in the build context (.dockerignore lets through: {context:?})"
                    );
                    for file in under {
                        let target = if file == source {
                            let name = Path::new(file).file_name().unwrap();
                            if dest.ends_with('/') {
                                into.join(dest).join(name)
                            } else {
                                into.join(dest)
                            }
                        } else {
                            // A directory's contents go into the destination.
                            into.join(dest).join(&file[source.len() + 1..])
                        };
                        copy_file(&root().join(file), &target);
                    }
                }
            }
            "RUN" => {
                if let Some(at) = rest.find("cargo build") {
                    let command = rest[at..].split("&&").next().unwrap();
                    cargo = Some(command.split_whitespace().map(String::from).collect());
                }
            }
            _ => {}
        }
    }
    cargo.expect("the build stage runs cargo build")
}

#[test]
fn dockerignore_follows_docker_matching() {
    let ignore = DockerIgnore {
        patterns: vec![
            (true, "*".into()),
            (false, "src".into()),
            (true, "src/*.bak".into()),
        ],
    };
    assert!(ignore.excluded("target"));
    assert!(ignore.excluded("target/debug/hookgate"));
    assert!(!ignore.excluded("src/main.rs"));
    assert!(ignore.excluded("src/main.bak"));
    assert!(ignore.excluded(".git"));
}

/// The image's build stage, run on the files it would have: fails when the
/// Dockerfile or `.dockerignore` leave out something `Cargo.toml` needs
/// (a `[[bench]]` file, a build script, a path dependency).
#[test]
fn the_image_build_stage_builds_the_binary_from_its_own_context() {
    let ignore = DockerIgnore::read(&root().join(".dockerignore"));
    let context = context_files(&ignore);
    assert!(
        !context.iter().any(|f| f.starts_with("target/")),
        "target/ is in the build context"
    );
    let dockerfile = std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).unwrap();
    let stage = build_stage(&dockerfile);

    let work = root().join("target/docker-context");
    let tree = work.join("src");
    let _ = std::fs::remove_dir_all(&tree);
    let cargo_command = apply_build_stage(&stage, &context, &tree);
    assert_eq!(cargo_command[..2], ["cargo", "build"]);
    assert!(cargo_command.iter().any(|a| a == "--locked"));

    let target: PathBuf = work.join("target");
    let output = Command::new(env!("CARGO"))
        .args(cargo_command[1..].iter().filter(|a| *a != "--release"))
        .current_dir(&tree)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the image's `{}` fails on the files the Dockerfile copies:\n{}",
        cargo_command.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    let version = Command::new(target.join("debug/hookgate"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}
