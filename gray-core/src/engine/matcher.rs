//! Compiled string conditions: exact, prefix, regex, present — and `invert`.

use std::cell::RefCell;

use regex_automata::Input;
use regex_automata::hybrid::dfa::{self as lazy, DFA};
use regex_automata::nfa::thompson::pikevm::{self, PikeVM};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_syntax::hir::{HirKind, Look};
use thread_local::ThreadLocal;

use crate::rules::Problem;

/// Longest regex source accepted, in bytes.
const MAX_REGEX_LEN: usize = 4096;
/// Compiled-program size limit for one regex (the regex crate's default is 10 MiB). 2 MiB
/// takes `^[\w.-]{1,64}@example\.com$` (1.1 MiB) and `\w{1,100}` (1.7 MiB), each built in
/// about 15 ms; `\w{1000}` is refused.
const REGEX_SIZE_LIMIT: usize = 2 << 20;
/// Most memory one regex's lazy DFA takes on one thread: the regex crate's default. It must
/// hold the states of the NFA's largest step (about half the NFA's size), or there is no
/// DFA and every match runs on the PikeVM (35 times slower for the e-mail regex above).
const DFA_CACHE_CAPACITY: usize = 2 << 20;
/// Deepest nesting of groups and repetitions accepted (the parser's default is 250).
const REGEX_NEST_LIMIT: u32 = 64;
/// Longest literal (`exact`, `prefix`) accepted, in bytes.
const MAX_LITERAL_LEN: usize = 8192;

/// One compiled test on an optional value.
#[derive(Debug)]
pub(super) enum Pattern {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    Regex(Box<Matcher>),
    Present,
}

impl Pattern {
    /// Whether `value` passes, before `invert` is applied.
    #[inline]
    pub(super) fn test(&self, value: Option<&[u8]>) -> bool {
        match (self, value) {
            (Self::Present, v) => v.is_some(),
            (_, None) => false,
            (Self::Exact(lit), Some(v)) => v == &**lit,
            (Self::Prefix(lit), Some(v)) => v.starts_with(lit),
            (Self::Regex(re), Some(v)) => re.is_match(v),
        }
    }

    /// Builds the pattern for one condition from its optional fields. Exactly one of them
    /// must be set. Returns the pattern and whether `present: false` asked for inversion.
    pub(super) fn compile(
        exact: Option<&str>,
        prefix: Option<&str>,
        regex: Option<&str>,
        present: Option<bool>,
        allowed: &'static str,
    ) -> Result<(Self, bool), (&'static str, Problem)> {
        let set = [
            exact.is_some(),
            prefix.is_some(),
            regex.is_some(),
            present.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(("", Problem::MatcherArity(allowed)));
        }
        if let Some(lit) = exact {
            return Ok((Self::Exact(literal(lit).map_err(|p| ("exact", p))?), false));
        }
        if let Some(lit) = prefix {
            return Ok((
                Self::Prefix(literal(lit).map_err(|p| ("prefix", p))?),
                false,
            ));
        }
        if let Some(present) = present {
            return Ok((Self::Present, !present));
        }
        let src = regex.unwrap_or_default();
        Ok((Self::regex(src).map_err(|p| ("regex", p))?, false))
    }

    /// Compiles a regex, turning an anchored literal (`^beta`, `^beta$`) into a compare.
    fn regex(src: &str) -> Result<Self, Problem> {
        if src.len() > MAX_REGEX_LEN {
            return Err(Problem::TooLong {
                len: src.len(),
                max: MAX_REGEX_LEN,
            });
        }
        // Parsed once: the same syntax tree is checked for a literal and compiled. `utf8`
        // off, as for `regex::bytes`: header values need not be UTF-8.
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .nest_limit(REGEX_NEST_LIMIT)
            .build()
            .parse(src)
            .map_err(|e| Problem::BadRegex(e.to_string()))?;
        if let Some(simple) = anchored_literal(hir.kind()) {
            return Ok(simple);
        }
        // Only "does it match?" is ever asked: a forward NFA without capture states, run
        // by a lazy DFA, with a PikeVM for when the DFA gives up. (A full `meta::Regex`
        // also compiles a reverse NFA and searches for literals to report where a match
        // is: 2.5 times the work per regex, which a reload of many regexes feels.)
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    // Header values are bytes, not always UTF-8: match them as
                    // `regex::bytes` does (the engines assume valid UTF-8 otherwise).
                    .utf8(false)
                    .which_captures(WhichCaptures::None)
                    .nfa_size_limit(Some(REGEX_SIZE_LIMIT)),
            )
            .build_from_hir(&hir)
            .map_err(|e| match e.size_limit() {
                Some(limit) => Problem::RegexTooBig { limit },
                None => Problem::BadRegex(e.to_string()),
            })?;
        Ok(Self::Regex(Box::new(Matcher::new(nfa)?)))
    }
}

/// A compiled regex, with scratch space per thread.
///
/// A lazy DFA answers: it builds its states as inputs need them, in a cache of its own
/// per thread (found without a lock, where the regex crate's pool takes a mutex on every
/// thread but the first). When it gives up — its cache cleared too often to pay, or a
/// Unicode word boundary meeting a non-ASCII byte — or could not be built for a large
/// NFA, a PikeVM on the same NFA answers, as the regex crate itself falls back.
#[derive(Debug)]
pub(super) struct Matcher {
    dfa: Option<DFA>,
    pikevm: PikeVM,
    caches: ThreadLocal<RefCell<Caches>>,
}

#[derive(Debug)]
struct Caches {
    dfa: Option<lazy::Cache>,
    pikevm: pikevm::Cache,
}

impl Matcher {
    fn new(nfa: thompson::NFA) -> Result<Self, Problem> {
        // As the regex crate configures its own lazy DFA: give up after three cache
        // clears that each made fewer than ten bytes of progress per state built.
        let config = DFA::config()
            .cache_capacity(DFA_CACHE_CAPACITY)
            .minimum_cache_clear_count(Some(3))
            .minimum_bytes_per_state(Some(10))
            .unicode_word_boundary(true);
        let dfa = DFA::builder()
            .configure(config)
            .build_from_nfa(nfa.clone())
            .ok();
        let pikevm = PikeVM::new_from_nfa(nfa).map_err(|e| Problem::BadRegex(e.to_string()))?;
        Ok(Self {
            dfa,
            pikevm,
            caches: ThreadLocal::new(),
        })
    }

    fn new_caches(&self) -> Caches {
        Caches {
            dfa: self.dfa.as_ref().map(DFA::create_cache),
            pikevm: self.pikevm.create_cache(),
        }
    }

    /// Not inlined: a regex match costs far more than a call, and inlined it would bloat
    /// every condition test (measured: +5 ns on two-condition routes, +50 ns on 100 routes).
    #[inline(never)]
    fn is_match(&self, value: &[u8]) -> bool {
        let input = Input::new(value).earliest(true);
        let caches = self.caches.get_or(|| RefCell::new(self.new_caches()));
        let Ok(mut caches) = caches.try_borrow_mut() else {
            // Re-entered on this thread (not possible today): scratch space of its own.
            return self.pikevm.is_match(&mut self.pikevm.create_cache(), input);
        };
        let Caches {
            dfa: dfa_cache,
            pikevm,
        } = &mut *caches;
        if let (Some(dfa), Some(cache)) = (&self.dfa, dfa_cache)
            && let Ok(found) = dfa.try_search_fwd(cache, &input)
        {
            return found.is_some();
        }
        self.pikevm.is_match(pikevm, input)
    }
}

fn literal(lit: &str) -> Result<Box<[u8]>, Problem> {
    if lit.len() > MAX_LITERAL_LEN {
        return Err(Problem::TooLong {
            len: lit.len(),
            max: MAX_LITERAL_LEN,
        });
    }
    Ok(lit.as_bytes().into())
}

/// `^lit` → prefix, `^lit$` → exact (and `^$` → the empty exact).
fn anchored_literal(kind: &HirKind) -> Option<Pattern> {
    let HirKind::Concat(parts) = kind else {
        return None;
    };
    let (first, rest) = parts.split_first()?;
    if !matches!(first.kind(), HirKind::Look(Look::Start)) {
        return None;
    }
    let (lit, rest): (&[u8], _) = match rest.split_first() {
        Some((part, tail)) => match part.kind() {
            HirKind::Literal(lit) => (&lit.0, tail),
            _ => (&[], rest),
        },
        None => return None,
    };
    match rest {
        [] if !lit.is_empty() => Some(Pattern::Prefix(lit.into())),
        [end] if matches!(end.kind(), HirKind::Look(Look::End)) => Some(Pattern::Exact(lit.into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_regex(src: &str) -> Pattern {
        match Pattern::regex(src) {
            Ok(p) => p,
            Err(e) => panic!("{src}: {e}"),
        }
    }

    #[test]
    fn anchored_literals_become_compares() {
        assert!(matches!(compile_regex("^high"), Pattern::Prefix(l) if &*l == b"high"));
        assert!(matches!(compile_regex("^beta$"), Pattern::Exact(l) if &*l == b"beta"));
        assert!(matches!(compile_regex("^$"), Pattern::Exact(l) if l.is_empty()));
        assert!(matches!(compile_regex(r"^v1\.2$"), Pattern::Exact(l) if &*l == b"v1.2"));
        // Not literals: stay regexes, and behave as such.
        for src in ["high", "^hi+gh", "(?i)^high", "^high|^low", "^(?m)a$", "^"] {
            assert!(matches!(compile_regex(src), Pattern::Regex(_)), "{src}");
        }
        assert!(compile_regex("(?i)^high").test(Some(b"HIGH-volume")));
        assert!(!compile_regex("^high").test(Some(b"very-high")));
    }

    #[test]
    fn oversize_regex_is_refused() {
        assert!(matches!(
            Pattern::regex(&"a".repeat(MAX_REGEX_LEN + 1)),
            Err(Problem::TooLong { .. })
        ));
        // Small source, huge program: counted repetitions blow the size limit.
        assert!(matches!(
            Pattern::regex(r"\w{1000}"),
            Err(Problem::RegexTooBig {
                limit: REGEX_SIZE_LIMIT
            })
        ));
        // While the regexes people write, Unicode classes and all, fit inside it, each
        // with a lazy DFA (not left to the PikeVM alone).
        for (src, value) in [
            (r"^[\w.+-]+@(example|corp)\.com$", "jane+gray@corp.com"),
            (r"^\w{1,32}$", "jane_doe"),
            (r"(?i)^\p{L}{2,20}-[0-9]{1,6}$", "Zoë-42"),
            (r"^[\w.-]{1,64}@example\.com$", "john.doe@example.com"),
            (r"\w{1,100}", "ü"),
        ] {
            let Pattern::Regex(m) = compile_regex(src) else {
                panic!("{src}: not a regex")
            };
            assert!(m.dfa.is_some(), "{src}: no lazy DFA");
            assert!(m.is_match(value.as_bytes()), "{src} on {value}");
        }
    }
}
