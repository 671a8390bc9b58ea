//! The shape of `src/`, read from the code itself: which file uses which (`use` paths and paths written in
//! code, resolved to the file that defines the module they name). A file may use what its own parent
//! modules declare; beyond that, no file uses one that uses it, however far round, and the declaration
//! layer (`src/meta/`) uses nothing of the runtime above it.
//!
//! `cargo test --test layers -- --nocapture` prints the files floor by floor: each stands above
//! everything it uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One source file: the module it defines, and the module paths its code names.
struct File {
    module: Vec<String>,
    children: BTreeSet<String>,
    paths: Vec<Vec<String>>,
}

/// The source with comments, strings and character literals blanked out, and the unit tests at its end
/// cut off (they may use anything).
fn code(text: &str) -> String {
    let text = match text.find("\n#[cfg(test)]\n") {
        Some(tests) => &text[..tests],
        None => text,
    };
    let chars: Vec<char> = text.chars().collect();
    let (mut out, mut i) = (String::with_capacity(text.len()), 0);
    while i < chars.len() {
        let at = |k: usize| chars.get(k).copied().unwrap_or(' ');
        match chars[i] {
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && at(i + 1) == '/') {
                    i += 1;
                }
                i += 2;
            }
            'r' if (at(i + 1) == '"' || at(i + 1) == '#') && !chars[i.saturating_sub(1)].is_alphanumeric() => {
                let hashes = (1..).take_while(|n| at(i + *n) == '#').count();
                if at(i + hashes + 1) != '"' {
                    out.push('r');
                    i += 1;
                    continue;
                }
                i += hashes + 2;
                let closing: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                while i < chars.len() && !chars[i..].iter().collect::<String>().starts_with(&closing) {
                    i += 1;
                }
                i += closing.len();
                out.push_str("\"\"");
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' if at(i + 1) == '\\' => {
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            }
            '\'' if at(i + 2) == '\'' => i += 3,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The tokens that matter for paths: words, `::`, braces, commas, semicolons and `*`.
fn tokens(code: &str) -> Vec<String> {
    let (mut tokens, mut word) = (Vec::new(), String::new());
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        match c {
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                tokens.push("::".into());
            }
            '{' | '}' | ',' | ';' | '*' => tokens.push(c.into()),
            c if c.is_whitespace() => {}
            _ => tokens.push(".".into()),
        }
    }
    tokens
}

/// The paths a `use` tree names, braces expanded: `use a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn use_tree(tokens: &[String], at: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    while *at < tokens.len() {
        match tokens[*at].as_str() {
            "::" => *at += 1,
            "{" => {
                *at += 1;
                while *at < tokens.len() && tokens[*at] != "}" {
                    use_tree(tokens, at, &path, out);
                    if tokens.get(*at).is_some_and(|t| t == ",") {
                        *at += 1;
                    }
                }
                *at += 1;
                return;
            }
            "," | "}" | ";" => break,
            "as" => *at += 2,
            "*" => *at += 1,
            word => {
                path.push(word.to_owned());
                *at += 1;
            }
        }
    }
    out.push(path);
}

fn is_word(token: &str) -> bool {
    token.starts_with(|c: char| c.is_alphanumeric() || c == '_')
}

fn read(root: &Path, path: &Path) -> File {
    let relative = path.strip_prefix(root).unwrap();
    let mut module: Vec<String> =
        relative.with_extension("").iter().skip(1).map(|part| part.to_string_lossy().into_owned()).collect();
    if module.last().is_some_and(|last| last == "mod" || last == "lib") {
        module.pop();
    }
    let tokens = tokens(&code(&std::fs::read_to_string(path).unwrap()));
    let mut children = BTreeSet::new();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let next = |n: usize| tokens.get(i + n).map(String::as_str).unwrap_or("");
        if tokens[i] == "mod" && next(2) == ";" {
            children.insert(next(1).to_owned());
        }
        if tokens[i] == "use" {
            i += 1;
            use_tree(&tokens, &mut i, &[], &mut paths);
            continue;
        }
        if is_word(&tokens[i]) && next(1) == "::" && (i == 0 || tokens[i - 1] != "::") {
            let mut path = vec![tokens[i].clone()];
            let mut j = i + 1;
            while tokens.get(j).is_some_and(|t| t == "::") && tokens.get(j + 1).is_some_and(|t| is_word(t)) {
                path.push(tokens[j + 1].clone());
                j += 2;
            }
            paths.push(path);
            i = j;
            continue;
        }
        i += 1;
    }
    File { module, children, paths }
}

/// Every file under `src/` but the binary's entry point and test-only files, by path.
fn files(root: &Path) -> BTreeMap<String, File> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".rs") && name != "main.rs" && name != "tests.rs" {
                let key = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                found.insert(key, read(root, &path));
            }
        }
    }
    found
}

/// Which file uses which: each path resolved to the file of the longest module it names. A file's own
/// module and its parents are left out: a module may use what its parents declare.
fn graph(files: &BTreeMap<String, File>) -> BTreeMap<&str, BTreeSet<&str>> {
    let by_module: BTreeMap<&[String], &str> =
        files.iter().map(|(path, f)| (f.module.as_slice(), path.as_str())).collect();
    let mut graph = BTreeMap::new();
    for (path, file) in files {
        let mut uses = BTreeSet::new();
        for named in &file.paths {
            let mut module = match named[0].as_str() {
                "crate" => Vec::new(),
                "self" | "super" => file.module.clone(),
                child if file.children.contains(child) => [file.module.clone(), vec![child.to_owned()]].concat(),
                _ => continue,
            };
            let supers = named.iter().take_while(|segment| *segment == "super").count();
            module.truncate(module.len().saturating_sub(supers));
            let rest = &named[supers.max(1)..];
            let full = [module, rest.to_vec()].concat();
            let target = (0..=full.len()).rev().find_map(|n| by_module.get(&full[..n]).copied());
            if let Some(target) = target
                && !file.module.starts_with(&files[target].module)
            {
                uses.insert(target);
            }
        }
        graph.insert(path.as_str(), uses);
    }
    graph
}

/// The groups of files that use each other in a loop (strongly connected, more than one file).
fn cycles<'a>(graph: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    // Kosaraju: finish order on the graph, then components on the reversed graph in reverse finish order.
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for &start in graph.keys() {
        let mut stack = vec![(start, false)];
        while let Some((node, done)) = stack.pop() {
            if done {
                order.push(node);
            } else if seen.insert(node) {
                stack.push((node, true));
                stack.extend(graph[node].iter().filter(|n| !seen.contains(*n)).map(|n| (*n, false)));
            }
        }
    }
    let mut reversed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (&from, targets) in graph {
        for &to in targets {
            reversed.entry(to).or_default().push(from);
        }
    }
    let (mut assigned, mut groups) = (BTreeSet::new(), Vec::new());
    for &node in order.iter().rev() {
        let (mut group, mut stack) = (Vec::new(), vec![node]);
        while let Some(n) = stack.pop() {
            if assigned.insert(n) {
                group.push(n);
                stack.extend(reversed.get(n).into_iter().flatten().filter(|m| !assigned.contains(*m)));
            }
        }
        if group.len() > 1 {
            group.sort();
            groups.push(group);
        }
    }
    groups
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_file_of_src_uses_one_that_uses_it() {
    let files = files(root());
    let graph = graph(&files);
    assert!(graph.len() > 50, "read {} files", graph.len());
    assert!(graph["src/modules/api/mod.rs"].contains("src/oauth/mod.rs"), "a path written in code is read");
    assert!(graph["src/engine/mod.rs"].contains("src/meta/mod.rs"), "a use path is read");
    assert_eq!(cycles(&graph), Vec::<Vec<&str>>::new());

    let mut floors: BTreeMap<&str, usize> = BTreeMap::new();
    while floors.len() < graph.len() {
        for (&file, uses) in &graph {
            if !floors.contains_key(file) && uses.iter().all(|u| floors.contains_key(u)) {
                floors.insert(file, 1 + uses.iter().map(|u| floors[u]).max().unwrap_or(0));
            }
        }
    }
    for floor in 1..=floors.values().copied().max().unwrap_or(0) {
        let on: Vec<&str> = floors.iter().filter(|(_, f)| **f == floor).map(|(file, _)| *file).collect();
        println!("floor {floor:2}: {}", on.join(" "));
    }
}

#[test]
fn the_declaration_layer_uses_nothing_above_it() {
    let files = files(root());
    let graph = graph(&files);
    let meta: Vec<&str> = graph.keys().copied().filter(|path| path.starts_with("src/meta/")).collect();
    assert!(meta.len() > 3, "{meta:?}");
    for file in meta {
        let above: Vec<&&str> = graph[file]
            .iter()
            .filter(|used| !used.starts_with("src/meta/") && **used != "src/environment.rs")
            .collect();
        assert!(above.is_empty(), "{file} uses {above:?}");
    }
}

#[test]
fn a_loop_is_found_however_far_round() {
    let graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::from([
        ("a", BTreeSet::from(["b"])),
        ("b", BTreeSet::from(["c"])),
        ("c", BTreeSet::from(["a", "d"])),
        ("d", BTreeSet::new()),
    ]);
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}
