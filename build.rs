//! Extracts every integer constant of the libcurl headers this crate is built
//! against, so the Lua module exports all of them by their C names (not a
//! hand-picked subset). The C compiler does the evaluation: the names come from
//! the preprocessor's macro list and from the enum bodies in the preprocessed
//! headers, and a generated C program prints each value. Names whose
//! expression is not an integer (types, strings, function-like macros) fall out
//! because the program does not compile with them; they are dropped and the
//! program is built again.

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// Header plumbing macros that are not values a Lua user passes or receives.
const SKIP_PREFIXES: &[&str] = &[
    "CURLINC_",
    "CURL_PULL_",
    "CURL_TYPEOF_",
    "CURL_FORMAT_",
    "CURL_SUFFIX_",
    "CURL_SIZEOF_",
    "CURL_ISOCKPRINTF",
    "CURL_EXTERN",
    "CURL_DEPRECATED",
    "CURL_IGNORE_DEPRECATION",
    "CURL_HAS_DECLSPEC",
    "CURL_DID_",
    "CURL_WIN32",
    "CURL_TEMP_",
    "CURL_NO_OLDIES",
    "CURL_STRICTER",
    "CURL_OFF_T_C",
    "CURL_OFF_TU_C",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let mut incs: Vec<PathBuf> = Vec::new();
    println!("cargo:rerun-if-env-changed=DEP_CURL_INCLUDE");
    if env::var_os("CARGO_FEATURE_VENDORED").is_some() {
        // the headers of the libcurl curl-sys builds (feature `vendored`)
        let inc = env::var_os("DEP_CURL_INCLUDE")
            .expect("feature vendored: curl-sys did not report its include directory");
        incs.push(PathBuf::from(inc));
    } else if let Ok(lib) = pkg_config::Config::new()
        .cargo_metadata(false)
        .env_metadata(false)
        .probe("libcurl")
    {
        incs = lib.include_paths;
    }
    let inc_args: Vec<String> = incs.iter().map(|p| format!("-I{}", p.display())).collect();

    let probe = out.join("probe.c");
    fs::write(&probe, "#include <curl/curl.h>\n").expect("write probe.c");

    // 1. object-like macros
    let macros = run(Command::new(&cc)
        .args(&inc_args)
        .args(["-E", "-dM"])
        .arg(&probe));
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut enum_names: BTreeSet<String> = BTreeSet::new();
    for line in macros.lines() {
        let Some(rest) = line.strip_prefix("#define ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = &rest[name.len()..];
        if after.starts_with('(') {
            continue; // function-like
        }
        let value = after.trim();
        if value.is_empty() || value.starts_with('"') {
            continue;
        }
        if wanted(&name) {
            names.insert(name);
        }
    }
    // 2. enumerators of the preprocessed headers
    let pre = run(Command::new(&cc).args(&inc_args).arg("-E").arg(&probe));
    for body in enum_bodies(&pre) {
        for item in body.split(',') {
            let id: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if wanted(&id) {
                enum_names.insert(id.clone());
                names.insert(id);
            }
        }
    }
    for inc in &incs {
        println!(
            "cargo:rerun-if-changed={}",
            inc.join("curl/curl.h").display()
        );
    }

    // 3. evaluate; drop names the compiler rejects, then retry
    let mut names: Vec<String> = names.into_iter().collect();
    let exe = out.join("constprobe");
    let src = out.join("constprobe.c");
    let mut ok = false;
    for _ in 0..8 {
        let mut c = String::from("#include <curl/curl.h>\n#include <stdio.h>\nint main(void) {\n");
        let first_line = 4;
        for n in &names {
            writeln!(c, "printf(\"%s %lld\\n\", \"{n}\", (long long)({n}));").ok();
        }
        c.push_str("return 0;\n}\n");
        fs::write(&src, c).expect("write constprobe.c");
        let o = Command::new(&cc)
            .args(&inc_args)
            .args(["-w", "-o"])
            .arg(&exe)
            .arg(&src)
            .output()
            .expect("run cc");
        if o.status.success() {
            ok = true;
            break;
        }
        let err = String::from_utf8_lossy(&o.stderr);
        let tag = format!("{}:", src.display());
        let mut bad: BTreeSet<usize> = BTreeSet::new();
        for l in err.lines() {
            if let Some(rest) = l.strip_prefix(&tag) {
                if let Some(num) = rest.split(':').next().and_then(|s| s.parse::<usize>().ok()) {
                    if num >= first_line && num < first_line + names.len() {
                        bad.insert(num - first_line);
                    }
                }
            }
        }
        if bad.is_empty() {
            panic!("constant probe failed to compile:\n{err}");
        }
        names = names
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !bad.contains(i))
            .map(|(_, n)| n)
            .collect();
    }
    assert!(ok, "constant probe did not compile after retries");
    let values = run(&mut Command::new(&exe));

    let mut rs = String::from(
        "/// Every integer constant of the libcurl headers: C name, value, and whether\n\
         /// it is an enumerator (macros are often old aliases).\n",
    );
    rs.push_str("pub static CONSTANTS: &[(&str, i64, bool)] = &[\n");
    let mut count = 0;
    for l in values.lines() {
        let mut it = l.split_whitespace();
        if let (Some(n), Some(v)) = (it.next(), it.next()) {
            let e = enum_names.contains(n);
            writeln!(rs, "    (\"{n}\", {v}, {e}),").ok();
            count += 1;
        }
    }
    rs.push_str("];\n");
    rs.push_str("\n/// The same constants as Rust items (`c::CURLOPT_URL`).\n#[allow(dead_code, non_upper_case_globals)]\npub mod c {\n");
    for l in values.lines() {
        let mut it = l.split_whitespace();
        if let (Some(n), Some(v)) = (it.next(), it.next()) {
            writeln!(rs, "    pub const {n}: i64 = {v};").ok();
        }
    }
    rs.push_str("}\n");
    assert!(count > 500, "only {count} libcurl constants found");
    fs::write(out.join("constants.rs"), rs).expect("write constants.rs");

    if env::var_os("CARGO_FEATURE_VENDORED").is_some() {
        let h = fs::read_to_string(incs[0].join("curl/curl.h")).expect("read curl.h");
        fs::write(out.join("easy_options.rs"), easy_option_table(&h))
            .expect("write easy_options.rs");
    }
}

/// The bundled libcurl is built without `curl_easy_option_next` (curl-sys
/// leaves out easyoptions.c), so its option table comes from its header:
/// every `CURLOPT(CURLOPT_X, CURLOPTTYPE_T, n)` (and `CURLOPTDEPRECATED`)
/// with its `CURLOT_*` kind, plus each `#define CURLOPT_A CURLOPT_B` alias
/// of a real option. (Checked to give exactly libcurl's own table for 7.88
/// and 8.22.) Rust source: `(name without CURLOPT_, id, CURLOT kind,
/// alias)`.
fn easy_option_table(h: &str) -> String {
    // CURLOPTTYPE_* -> (id base, CURLOT_* kind)
    fn kind(t: &str) -> Option<(i32, i32)> {
        Some(match t {
            "LONG" => (0, 0),
            "VALUES" => (0, 1),
            "OFF_T" => (30000, 2),
            "OBJECTPOINT" => (10000, 3),
            "STRINGPOINT" => (10000, 4),
            "SLISTPOINT" => (10000, 5),
            "CBPOINT" => (10000, 6),
            "BLOB" => (40000, 7),
            "FUNCTIONPOINT" => (20000, 8),
            _ => return None,
        })
    }
    let mut opts: std::collections::BTreeMap<String, (i32, i32, bool)> = Default::default();
    // the header's text with each macro call's arguments on one line
    let flat: String = h.replace('\n', " ");
    for head in ["CURLOPT(CURLOPT_", "CURLOPTDEPRECATED(CURLOPT_"] {
        let mut rest = flat.as_str();
        while let Some(i) = rest.find(head) {
            let before_ok = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
            rest = &rest[i + head.len()..];
            if !before_ok {
                continue;
            }
            let args: Vec<&str> = rest.splitn(4, ',').map(str::trim).collect();
            if args.len() < 3 {
                continue;
            }
            let num = args[2].trim_end_matches(')').trim();
            let (Some(t), Ok(n)) = (args[1].strip_prefix("CURLOPTTYPE_"), num.parse::<i32>())
            else {
                continue;
            };
            if let Some((base, k)) = kind(t) {
                opts.insert(args[0].to_string(), (base + n, k, false));
            }
        }
    }
    for line in h.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("#define") {
            continue;
        }
        let (Some(a), Some(b)) = (w.next(), w.next()) else {
            continue;
        };
        let (Some(a), Some(b)) = (a.strip_prefix("CURLOPT_"), b.strip_prefix("CURLOPT_")) else {
            continue;
        };
        if b.starts_with("OBSOLETE") {
            continue;
        }
        if let Some(&(id, k, _)) = opts.get(b) {
            opts.insert(a.to_string(), (id, k, true));
        }
    }
    opts.retain(|n, _| !n.starts_with("OBSOLETE"));
    assert!(
        opts.len() > 250,
        "only {} easy options in curl.h",
        opts.len()
    );
    let mut rs = String::from(
        "/// The bundled libcurl's easy options, from its curl.h (build.rs).\n\
         pub static EASY_OPTIONS: &[(&str, i32, i32, bool)] = &[\n",
    );
    for (n, (id, k, alias)) in &opts {
        let _ = writeln!(rs, "    ({n:?}, {id}, {k}, {alias}),");
    }
    rs.push_str("];\n");
    rs
}

fn wanted(name: &str) -> bool {
    (name.starts_with("CURL") || name.starts_with("LIBCURL_VERSION_"))
        && !SKIP_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn enum_bodies(src: &str) -> Vec<&str> {
    let mut v = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("enum") {
        let after = &rest[i + 4..];
        let before_ok = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
        let head: String = after
            .chars()
            .take_while(|c| *c != '{' && *c != ';')
            .collect();
        if before_ok && after.len() > head.len() && after[head.len()..].starts_with('{') {
            let body_start = head.len() + 1;
            if let Some(end) = after[body_start..].find('}') {
                v.push(&after[body_start..body_start + end]);
                rest = &after[body_start + end..];
                continue;
            }
        }
        rest = after;
    }
    v
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run compiler");
    if !o.status.success() {
        panic!("{:?} failed: {}", cmd, String::from_utf8_lossy(&o.stderr));
    }
    String::from_utf8_lossy(&o.stdout).into_owned()
}
