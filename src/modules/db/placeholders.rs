//! Placeholders as scripts write them for their own database, as PostgreSQL takes them.
//!
//! A server's own database keeps one contract on both stores: an array binds positionally (`?`), a map
//! by name (`:name`). PostgreSQL itself knows only `$1`, `$2`, …, so on the PostgreSQL store each
//! statement is rewritten before it is prepared: `?` becomes `$1`, `$2`, … in order, a `:name` becomes
//! the `$n` of its value (one number per name, however often it appears), and `$n` written as such is
//! left alone. Only SQL proper is looked at: string literals (`'…'`, `E'…'` with its backslash escapes),
//! quoted identifiers, dollar-quoted strings and comments (nested `/* */`, `--`) are copied as they are,
//! and `::type` casts and `a[lo:hi]` slices are not names.
//!
//! What cannot be read one way only is refused rather than guessed: `?` beside `$n`, a `:name` with an
//! array, `?` or `$n` with a map, a name the map lacks or a key no placeholder uses, and more or fewer
//! `?` than values. jsonb's `?`, `?|` and `?&` operators read as placeholders here; the refusal says to
//! write `jsonb_exists`, `jsonb_exists_any` or `jsonb_exists_all` instead.

use std::borrow::Cow;
use std::ops::Range;

use rhai::Dynamic;

use super::{Params, Sql, sql_error};

/// A placeholder found in SQL proper, and where.
#[derive(Debug, PartialEq)]
enum Mark<'a> {
    /// `?`
    Question,
    /// `$n` as written
    Numbered,
    /// `:name`, without its colon
    Named(&'a str),
}

/// What jsonb's operators become under this contract, said wherever a `?` may be one of them.
const JSONB: &str = "jsonb's ?, ?| and ?& operators are placeholders here: write jsonb_exists, jsonb_exists_any \
                     or jsonb_exists_all";

/// `sql` with its placeholders numbered as PostgreSQL takes them, and the values in that order.
pub fn positional<'a>(sql: &'a str, params: &Params) -> Sql<(Cow<'a, str>, Vec<Dynamic>)> {
    let marks = scan(sql);
    let questions = marks.iter().filter(|(_, mark)| *mark == Mark::Question).count();
    let numbered = marks.iter().any(|(_, mark)| *mark == Mark::Numbered);
    let named = marks.iter().find_map(|(_, mark)| match mark {
        Mark::Named(name) => Some(*name),
        _ => None,
    });
    match params {
        Params::Positional(values) => {
            if let Some(name) = named {
                return Err(sql_error(format!(
                    "the statement names a parameter (:{name}) but the parameters are an array: pass a map, or \
                     write ': {name}' if it is not a parameter"
                )));
            }
            if questions > 0 && numbered {
                return Err(sql_error(format!("the statement mixes ? and $n placeholders: use one ({JSONB})")));
            }
            if questions == 0 {
                return Ok((Cow::Borrowed(sql), values.clone()));
            }
            if questions != values.len() {
                return Err(sql_error(format!(
                    "the statement has {questions} ? placeholders and {} values are given ({JSONB})",
                    values.len()
                )));
            }
            let mut next = 0;
            let sql = rewrite(sql, &marks, |_| {
                next += 1;
                next
            });
            Ok((Cow::Owned(sql), values.clone()))
        }
        Params::Named(pairs) => {
            if questions > 0 || numbered {
                let which = if questions > 0 { "?" } else { "$n" };
                return Err(sql_error(format!(
                    "the statement has a positional placeholder ({which}) but the parameters are a map: write \
                     :name, or pass an array ({JSONB})"
                )));
            }
            let key = |name: &str| name.strip_prefix(':').unwrap_or(name).to_owned();
            let mut order: Vec<&str> = Vec::new();
            for (_, mark) in &marks {
                if let Mark::Named(name) = mark
                    && !order.contains(name)
                {
                    if !pairs.iter().any(|(k, _)| key(k) == *name) {
                        return Err(sql_error(format!("the statement's :{name} is not in the parameters map")));
                    }
                    order.push(name);
                }
            }
            if let Some((unused, _)) = pairs.iter().find(|(k, _)| !order.contains(&key(k).as_str())) {
                return Err(sql_error(format!("the parameters map has '{unused}', which the statement does not use")));
            }
            let values = order
                .iter()
                .filter_map(|name| pairs.iter().find(|(k, _)| key(k) == *name).map(|(_, v)| v.clone()))
                .collect();
            let sql = rewrite(sql, &marks, |mark| match mark {
                Mark::Named(name) => order.iter().position(|n| n == name).map_or(0, |i| i + 1),
                _ => 0,
            });
            Ok((Cow::Owned(sql), values))
        }
    }
}

/// `sql` with each `?` and `:name` replaced by `$` and the number `number` gives it.
fn rewrite(sql: &str, marks: &[(Range<usize>, Mark<'_>)], mut number: impl FnMut(&Mark<'_>) -> usize) -> String {
    let (mut out, mut copied) = (String::with_capacity(sql.len() + 8), 0);
    for (at, mark) in marks {
        if *mark == Mark::Numbered {
            continue;
        }
        out.push_str(&sql[copied..at.start]);
        out.push('$');
        out.push_str(&number(mark).to_string());
        copied = at.end;
    }
    out.push_str(&sql[copied..]);
    out
}

/// A byte that may continue an identifier (PostgreSQL allows `$` after the first character, and any
/// non-ASCII letter).
fn identifier(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

/// A byte that may start an identifier (or a dollar-quote's tag).
fn identifier_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

/// The placeholders of `sql`, in order, outside literals, quoted identifiers and comments. An
/// unterminated literal or comment runs to the end, where PostgreSQL will say what is wrong.
fn scan(sql: &str) -> Vec<(Range<usize>, Mark<'_>)> {
    let bytes = sql.as_bytes();
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let (mut marks, mut i) = (Vec::new(), 0);
    while i < bytes.len() {
        let before = if i == 0 { 0 } else { bytes[i - 1] };
        i = match bytes[i] {
            b'\'' => {
                // E'…' (not the end of a longer word) takes backslash escapes.
                let escapes = matches!(before, b'e' | b'E') && (i < 2 || !identifier(bytes[i - 2]));
                quoted(bytes, i, b'\'', escapes)
            }
            b'"' => quoted(bytes, i, b'"', false),
            b'-' if at(i + 1) == b'-' => bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |n| i + n),
            b'/' if at(i + 1) == b'*' => block_comment(bytes, i),
            b'?' => {
                marks.push((i..i + 1, Mark::Question));
                i + 1
            }
            b':' if at(i + 1) == b':' => i + 2,
            b':' if identifier_start(at(i + 1)) && !identifier(before) => {
                let end =
                    (i + 1..bytes.len()).find(|&j| !identifier(bytes[j]) || bytes[j] == b'$').unwrap_or(bytes.len());
                marks.push((i..end, Mark::Named(&sql[i + 1..end])));
                end
            }
            b'$' if !identifier(before) && at(i + 1).is_ascii_digit() => {
                let end = (i + 1..bytes.len()).find(|&j| !bytes[j].is_ascii_digit()).unwrap_or(bytes.len());
                marks.push((i..end, Mark::Numbered));
                end
            }
            b'$' if !identifier(before) => dollar_quoted(bytes, i),
            _ => i + 1,
        };
    }
    marks
}

/// The end of the literal or quoted identifier opening at `start` with `quote` (doubled inside).
fn quoted(bytes: &[u8], start: usize, quote: u8, escapes: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if escapes => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The end of the block comment opening at `start`; they nest.
fn block_comment(bytes: &[u8], start: usize) -> usize {
    let (mut depth, mut i) = (0usize, start);
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// After a `$` at `start`: the end of the dollar-quoted string it opens (`$$…$$`, `$tag$…$tag$`), or
/// the next byte when it opens none.
fn dollar_quoted(bytes: &[u8], start: usize) -> usize {
    let tag_end = (start + 1..bytes.len()).find(|&j| !(identifier(bytes[j]) && bytes[j] != b'$'));
    let Some(tag_end) = tag_end.filter(|&j| bytes[j] == b'$') else { return start + 1 };
    if tag_end > start + 1 && !identifier_start(bytes[start + 1]) {
        return start + 1;
    }
    let tag = &bytes[start..=tag_end];
    let body = tag_end + 1;
    bytes[body..].windows(tag.len()).position(|w| w == tag).map_or(bytes.len(), |n| body + n + tag.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(values: &[i64]) -> Params {
        Params::Positional(values.iter().map(|&v| Dynamic::from(v)).collect())
    }

    fn map(pairs: &[(&str, i64)]) -> Params {
        Params::Named(pairs.iter().map(|(k, v)| (k.to_string(), Dynamic::from(*v))).collect())
    }

    fn translated(sql: &str, params: &Params) -> (String, Vec<i64>) {
        let (sql, values) = positional(sql, params).unwrap_or_else(|e| panic!("{sql}: {e}"));
        (sql.into_owned(), values.into_iter().map(|v| v.as_int().unwrap()).collect())
    }

    fn refusal(sql: &str, params: &Params) -> String {
        positional(sql, params).err().unwrap_or_else(|| panic!("{sql} was accepted")).to_string()
    }

    #[test]
    fn question_marks_are_numbered_in_order() {
        let (sql, values) = translated("INSERT INTO t VALUES (?, ?, ?)", &array(&[1, 2, 3]));
        assert_eq!((sql.as_str(), values), ("INSERT INTO t VALUES ($1, $2, $3)", vec![1, 2, 3]));
    }

    #[test]
    fn numbered_placeholders_are_kept_as_written() {
        let sql = "SELECT $2::int + $1 AS n";
        assert_eq!(translated(sql, &array(&[1, 2])), (sql.to_owned(), vec![1, 2]));
    }

    #[test]
    fn names_get_one_number_each_in_order_of_appearance() {
        let (sql, values) = translated("SELECT :b AS b, :a AS a, :b + 1 AS c", &map(&[("a", 1), ("b", 2)]));
        assert_eq!((sql.as_str(), values), ("SELECT $1 AS b, $2 AS a, $1 + 1 AS c", vec![2, 1]));
        let (sql, _) = translated("SELECT :a", &map(&[(":a", 1)]));
        assert_eq!(sql, "SELECT $1", "a key may carry its colon");
    }

    #[test]
    fn casts_slices_literals_identifiers_and_comments_are_left_alone() {
        let sql = "SELECT :n::int AS n, (ARRAY[1,2,3])[lo:hi], 'a ? :x $1', E'it\\'s ?', \"odd?:col\", \
                   $$ ? :y $$, $q$ ? $1 $q$, x$1 -- ? :z\n /* ? /* :w */ $1 */ FROM t WHERE a = :n";
        let (out, values) = translated(sql, &map(&[("n", 7)]));
        assert_eq!(out, sql.replace(":n::int", "$1::int").replace("a = :n", "a = $1"));
        assert_eq!(values, vec![7]);
        let (out, _) = translated("SELECT ?::text || '?'", &array(&[1]));
        assert_eq!(out, "SELECT $1::text || '?'");
    }

    #[test]
    fn what_cannot_be_read_one_way_is_refused_naming_it() {
        assert!(refusal("SELECT ? + $1", &array(&[1, 2])).contains("mixes ? and $n"));
        assert!(refusal("SELECT :a", &array(&[1])).contains("(:a) but the parameters are an array"));
        assert!(refusal("SELECT ?", &map(&[("a", 1)])).contains("positional placeholder (?)"));
        assert!(refusal("SELECT $1", &map(&[("a", 1)])).contains("positional placeholder ($n)"));
        assert!(refusal("SELECT :a, :b", &map(&[("a", 1)])).contains(":b is not in the parameters map"));
        assert!(refusal("SELECT :a", &map(&[("a", 1), ("c", 3)])).contains("'c', which the statement does not use"));
        let jsonb = refusal("SELECT doc ? 'k' FROM t", &array(&[]));
        assert!(jsonb.contains("1 ? placeholders and 0 values") && jsonb.contains("jsonb_exists"), "{jsonb}");
    }

    #[test]
    fn unterminated_quotes_and_comments_run_to_the_end() {
        for sql in ["SELECT '?", "SELECT \"?", "SELECT /* ?", "SELECT $$ ?", "SELECT -- ?"] {
            assert_eq!(translated(sql, &array(&[])).0, sql);
        }
    }
}
