//! What an expression reads of its input: the paths of plain keys it reaches the input
//! through, when it reaches it through nothing else. `"users." + (.nat | ascii_downcase)`
//! reads `.nat` alone; `.a + .b` reads `.a` and `.b`; `keys`, `.[0]`, `..`, a bare `.` or a
//! definition may read anything. Such paths let a record be parsed in part (`Fields`).

use jaq_core::{
    load::{
        Lexer, Parser,
        lex::{StrPart, Tok, Token},
        parse::{BinaryOp, Pattern, Term},
    },
    path::{Part, Path},
};

/// The paths `code` reads its input through, each of at least one key; none when it may read
/// the input otherwise (or does not parse).
pub(crate) fn input_paths(code: &str) -> Option<Vec<Vec<String>>> {
    let tokens = Lexer::new(code).lex().ok()?;
    let term: Term<&str> = Parser::new(&tokens).parse(|p| p.term()).ok()?;
    let mut paths = Vec::new();
    reads(&term, &mut paths)?;
    Some(paths)
}

/// Whether `code` gives the same outputs whenever it is given the same input: it calls
/// nothing that reads the clock or other inputs, or writes to stderr (a word in a string
/// counts too: such a filter is only run more often than needed).
pub(crate) fn is_pure(code: &str) -> bool {
    fn pure(tokens: &[Token<&str>]) -> bool {
        tokens.iter().all(|Token(text, kind)| match kind {
            Tok::Word => !IMPURE.contains(text),
            Tok::Block(inner) => pure(inner),
            Tok::Str(parts) => parts.iter().all(|part| match part {
                StrPart::Term(term) => pure(std::slice::from_ref(term)),
                StrPart::Str(_) | StrPart::Char(_) => true,
            }),
            Tok::Var | Tok::Fmt | Tok::Num | Tok::Sym => true,
        })
    }
    Lexer::new(code).lex().is_ok_and(|tokens| pure(&tokens))
}

/// Calls whose outputs or effects do not follow from their input alone.
const IMPURE: [&str; 9] = [
    "now",
    "input",
    "inputs",
    "input_filename",
    "input_line_number",
    "debug",
    "stderr",
    "debug_empty",
    "stderr_empty",
];

/// Adds the paths `term` reads of its input to `paths`; none when it may read more.
///
/// Right of a pipe the input is what the left gave: values at whole paths, or built from
/// them, so what the right side does with them reads nothing more of the input. Everything
/// else (`a, b`, `a + b`, `"\(a)"`, `if`, an index `.[a]`) runs its parts on the input itself.
fn reads(term: &Term<&str>, paths: &mut Vec<Vec<String>>) -> Option<()> {
    match term {
        Term::Num(_) | Term::Var(_) | Term::Arr(None) => Some(()),
        Term::Call(name, args) if args.is_empty() && CONSTANTS.contains(name) => Some(()),
        Term::Str(None, parts) => parts.iter().try_for_each(|part| match part {
            StrPart::Term(term) => reads(term, paths),
            StrPart::Str(_) | StrPart::Char(_) => Some(()),
        }),
        Term::Arr(Some(inner)) | Term::Neg(inner) | Term::TryCatch(inner, _) => reads(inner, paths),
        Term::Obj(entries) => entries.iter().try_for_each(|(key, value)| {
            reads(key, paths)?;
            // `{a}` is `{a: .a}`; left out rather than spelled out.
            reads(value.as_ref()?, paths)
        }),
        Term::IfThenElse(branches, Some(otherwise)) => {
            branches.iter().try_for_each(|(condition, then)| {
                reads(condition, paths)?;
                reads(then, paths)
            })?;
            reads(otherwise, paths)
        }
        Term::BinOp(left, op, right) => match op {
            BinaryOp::Pipe(None) => reads(left, paths),
            BinaryOp::Pipe(Some(Pattern::Var(_)))
            | BinaryOp::Comma
            | BinaryOp::Alt
            | BinaryOp::Or
            | BinaryOp::And
            | BinaryOp::Math(_)
            | BinaryOp::Cmp(_) => {
                reads(left, paths)?;
                reads(right, paths)
            }
            _ => None,
        },
        Term::Path(head, path) => path_reads(head, path, paths),
        _ => None,
    }
}

/// Calls that give a value without reading their input.
const CONSTANTS: [&str; 4] = ["null", "true", "false", "empty"];

/// `.a.b[0]` reads `.a.b`; `f[g]` reads what `f` and `g` read.
fn path_reads(
    head: &Term<&str>,
    path: &Path<Term<&str>>,
    paths: &mut Vec<Vec<String>>,
) -> Option<()> {
    let mut parts = path.0.iter().peekable();
    if let Term::Id = head {
        let mut keys = Vec::new();
        while let Some(key) = parts.peek().and_then(|(part, _)| constant_key(part)) {
            keys.push(key);
            parts.next();
        }
        if keys.is_empty() {
            return None;
        }
        paths.push(keys);
    } else {
        reads(head, paths)?;
    }
    parts.try_for_each(|(part, _)| match part {
        Part::Index(index) => reads(index, paths),
        Part::Range(from, to) => from.iter().chain(to).try_for_each(|t| reads(t, paths)),
    })
}

/// The key of `.a` or `."a"` (`.["a"]`).
fn constant_key(part: &Part<Term<&str>>) -> Option<String> {
    let Part::Index(Term::Str(None, parts)) = part else {
        return None;
    };
    parts
        .iter()
        .map(|part| match part {
            StrPart::Str(text) => Some(text.to_string()),
            StrPart::Char(c) => Some(c.to_string()),
            StrPart::Term(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(code: &str) -> Option<Vec<String>> {
        input_paths(code).map(|paths| paths.iter().map(|keys| keys.join(".")).collect())
    }

    #[test]
    fn paths_reached_through_pipes_strings_and_operators() {
        for (code, expected) in [
            (".a.b", vec!["a.b"]),
            ("\"users.\" + (.nat | ascii_downcase)", vec!["nat"]),
            ("\"users.\\(.nat | ascii_downcase)\"", vec!["nat"]),
            (".a + .b // \"x\"", vec!["a", "b"]),
            ("[.a, .b.c] | join(\"-\")", vec!["a", "b.c"]),
            (".a[0] | tostring", vec!["a"]),
            (".[\"x y\"].z", vec!["x y.z"]),
            (".a[.b]", vec!["a", "b"]),
            ("if .a == 1 then .b else null end", vec!["a", "b"]),
            ("{n: .a, m: 2}", vec!["a"]),
            (".a as $x | $x + .b", vec!["a", "b"]),
            ("-.a?", vec!["a"]),
            ("\"constant\"", vec![]),
        ] {
            let expected: Vec<String> = expected.into_iter().map(String::from).collect();
            assert_eq!(paths(code), Some(expected), "{code}");
        }
    }

    #[test]
    fn filters_reading_the_clock_or_other_inputs_are_not_pure() {
        for code in [
            "\"users.\" + (.nat | ascii_downcase)",
            ".a | tostring | .[0:2]",
            "env.HOME + .a",
        ] {
            assert!(is_pure(code), "{code}");
        }
        for code in [
            ".a + (now | tostring)",
            "\"t.\\(now | strftime(\"%Y\"))\"",
            "[.a, input]",
            ".a | debug",
            "def f: now; .a + f",
            "(",
        ] {
            assert!(!is_pure(code), "{code}");
        }
    }

    #[test]
    fn anything_that_may_read_more_reads_the_whole_input() {
        for code in [
            ".",
            "ascii_downcase",
            ". | .a",
            ".[0]",
            ".[]",
            "..",
            "keys",
            "map(.a)",
            "{a}",
            "if .a then .b end",
            ".a = 1",
            "def f: .; f",
            "reduce .a as $x (0; . + $x)",
            "@base64",
            ".[] as [$a] | $a",
            "\"\\(.)\"",
            "(",
        ] {
            assert_eq!(paths(code), None, "{code}");
        }
    }
}
