//! The grammar of `#[cached(...)]`: parsed into [`CachedArgs`], every mistake reported at once.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Meta, Token};

use crate::ctxt::Errors;

/// The options `#[cached]` accepts, in the order the error for an unknown one lists them.
const OPTIONS: &str = "`ttl`, `skip`, `name`, `version`, `capacity`, `cache_none`, `store`, \
                       `format`, `key`, `l1_ttl`, `ttl_from`, `unless`";

/// `store = "…"`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Store {
    #[default]
    Memory,
    Redis,
    Tiered,
}

/// `format = "…"`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Format {
    #[default]
    Json,
    Bincode,
}

/// What `#[cached(...)]` said.
#[derive(Default)]
pub(crate) struct CachedArgs {
    /// Milliseconds.
    pub(crate) ttl: Option<u64>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) name: Option<LitStr>,
    pub(crate) version: u32,
    pub(crate) capacity: Option<usize>,
    pub(crate) cache_none: bool,
    pub(crate) store: Store,
    /// Where `store = "…"` was written, for errors about it.
    pub(crate) store_span: Option<Span>,
    pub(crate) format: Format,
    pub(crate) format_span: Option<Span>,
    pub(crate) key: Option<LitStr>,
    pub(crate) capacity_span: Option<Span>,
    pub(crate) version_span: Option<Span>,
    /// Milliseconds, and where it was written.
    pub(crate) l1_ttl: Option<(u64, Span)>,
    /// `ttl_from = path`: a `fn(&V) -> Option<Duration>`.
    pub(crate) ttl_from: Option<syn::ExprPath>,
    /// `unless = path`: a `fn(&V) -> bool`.
    pub(crate) unless: Option<syn::ExprPath>,
}

/// Parses `#[cached(...)]`'s arguments; each mistake is reported, and the rest still parsed.
pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> CachedArgs {
    let mut out = CachedArgs::default();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(err) => {
            errors.push(err);
            return out;
        }
    };
    let mut seen: Vec<String> = Vec::new();
    for meta in metas {
        let Some(ident) = meta.path().get_ident().cloned() else {
            errors.at(
                meta.path().span(),
                format!("unknown option; expected one of {OPTIONS}"),
            );
            continue;
        };
        let option = ident.to_string();
        if seen.contains(&option) {
            errors.at(
                ident.span(),
                format!("duplicate option `{option}`: give it once"),
            );
            continue;
        }
        seen.push(option.clone());
        match option.as_str() {
            "ttl" => out.ttl = value(&meta, errors).and_then(|lit| ttl(&lit, errors)),
            "l1_ttl" => {
                out.l1_ttl = value(&meta, errors)
                    .and_then(|lit| ttl(&lit, errors).map(|ms| (ms, lit.span())));
            }
            "skip" => match &meta {
                Meta::List(list) => {
                    // `parse_any`: `skip(self)` is accepted, as in tracing.
                    let names = |input: syn::parse::ParseStream<'_>| {
                        Punctuated::<Ident, Token![,]>::parse_terminated_with(
                            input,
                            syn::ext::IdentExt::parse_any,
                        )
                    };
                    match list.parse_args_with(names) {
                        Ok(names) => out.skip.extend(names),
                        Err(err) => errors.push(err),
                    }
                }
                _ => errors.at(
                    meta.span(),
                    "write the parameters to leave out of the key in parentheses: `skip(db, log)`",
                ),
            },
            "name" => {
                if let Some(lit) = value(&meta, errors) {
                    match lit {
                        Lit::Str(s) if !s.value().trim().is_empty() => out.name = Some(s),
                        other => errors.at(
                            other.span(),
                            "`name` is the cache namespace: a non-empty string, `name = \"users::get\"`",
                        ),
                    }
                }
            }
            "version" => {
                if let Some(lit) = value(&meta, errors) {
                    match &lit {
                        Lit::Int(int) => match int.base10_parse::<u32>() {
                            Ok(v) => {
                                out.version = v;
                                out.version_span = Some(int.span());
                            }
                            Err(_) => {
                                errors.at(int.span(), "`version` is a number from 0 to 4294967295")
                            }
                        },
                        other => errors.at(other.span(), "`version` is a number: `version = 2`"),
                    }
                }
            }
            "capacity" => {
                if let Some(lit) = value(&meta, errors) {
                    match &lit {
                        Lit::Int(int) => match int.base10_parse::<usize>() {
                            Ok(n) if n > 0 => {
                                out.capacity = Some(n);
                                out.capacity_span = Some(int.span());
                            }
                            _ => errors.at(
                                int.span(),
                                "`capacity` is the most entries kept, at least 1: `capacity = 10_000`",
                            ),
                        },
                        other => errors.at(
                            other.span(),
                            "`capacity` is a number of entries: `capacity = 10_000`",
                        ),
                    }
                }
            }
            "cache_none" => match &meta {
                Meta::Path(_) => out.cache_none = true,
                _ => {
                    if let Some(lit) = value(&meta, errors) {
                        match lit {
                            Lit::Bool(b) => out.cache_none = b.value,
                            other => errors.at(
                                other.span(),
                                "`cache_none` is `true` or `false`: `cache_none = true`",
                            ),
                        }
                    }
                }
            },
            "store" => {
                if let Some(lit) = value(&meta, errors) {
                    out.store_span = Some(lit.span());
                    match &lit {
                        Lit::Str(s) if s.value() == "memory" => out.store = Store::Memory,
                        Lit::Str(s) if s.value() == "redis" => out.store = Store::Redis,
                        Lit::Str(s) if s.value() == "tiered" => out.store = Store::Tiered,
                        other => errors.at(
                            other.span(),
                            "unknown store; expected `store = \"memory\"` (the default), `store = \"redis\"` or `store = \"tiered\"`",
                        ),
                    }
                }
            }
            "format" => {
                if let Some(lit) = value(&meta, errors) {
                    out.format_span = Some(lit.span());
                    match &lit {
                        Lit::Str(s) if s.value() == "json" => out.format = Format::Json,
                        Lit::Str(s) if s.value() == "bincode" => out.format = Format::Bincode,
                        other => errors.at(
                            other.span(),
                            "unknown format; expected `format = \"json\"` (the default) or `format = \"bincode\"`",
                        ),
                    }
                }
            }
            "key" => {
                if let Some(lit) = value(&meta, errors) {
                    match lit {
                        Lit::Str(s) => out.key = Some(s),
                        other => errors.at(
                            other.span(),
                            "`key` is a template string naming parameters: `key = \"user:{id}\"`",
                        ),
                    }
                }
            }
            "ttl_from" => {
                out.ttl_from = function(
                    &meta,
                    "`ttl_from` names a function giving each value its ttl, \
                     `fn(&V) -> Option<Duration>`: `ttl_from = token_ttl`",
                    errors,
                );
            }
            "unless" => {
                out.unless = function(
                    &meta,
                    "`unless` names a function saying which values not to store, \
                     `fn(&V) -> bool`: `unless = is_partial`",
                    errors,
                );
            }
            _ => errors.at(
                ident.span(),
                format!("unknown option `{option}`; expected one of {OPTIONS}"),
            ),
        }
    }
    out
}

/// The path of `option = path::to::function`, or an error saying to write one.
fn function(meta: &Meta, help: &str, errors: &mut Errors) -> Option<syn::ExprPath> {
    match meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Path(path) => Some(path.clone()),
            other => {
                errors.at(other.span(), help);
                None
            }
        },
        _ => {
            errors.at(meta.span(), help);
            None
        }
    }
}

/// The literal of `option = literal`, or an error saying to write one.
fn value(meta: &Meta, errors: &mut Errors) -> Option<Lit> {
    let name = meta
        .path()
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_default();
    match meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit { lit, .. }) => Some(lit.clone()),
            other => {
                errors.at(other.span(), format!("`{name}` takes a literal value"));
                None
            }
        },
        _ => {
            errors.at(meta.span(), format!("write `{name} = …`"));
            None
        }
    }
}

const TTL_HELP: &str = "write a number of seconds (`ttl = 300`) or a duration such as \
                        `ttl = \"250ms\"`, `\"30s\"`, `\"5m\"`, `\"1h30m\"`, `\"2d\"`";

/// A ttl in milliseconds: seconds as an integer, or a duration string.
fn ttl(lit: &Lit, errors: &mut Errors) -> Option<u64> {
    let ms = match lit {
        Lit::Int(int) => int
            .base10_parse::<u64>()
            .ok()
            .and_then(|secs| secs.checked_mul(1000)),
        Lit::Str(s) => parse_duration(&s.value()),
        _ => None,
    };
    match ms {
        Some(0) => {
            errors.at(
                lit.span(),
                "`ttl` must be more than zero; to keep entries until evicted, leave `ttl` out",
            );
            None
        }
        Some(ms) => Some(ms),
        None => {
            errors.at(lit.span(), format!("invalid ttl: {TTL_HELP}"));
            None
        }
    }
}

/// `"1h30m"`, `"250ms"`, `"10s"`… in milliseconds: one or more `<digits><unit>` pairs, units
/// `ms`, `s`, `m`, `h`, `d`, each at most once and largest first.
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let index = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        next_unit = index + 1;
        total = total.checked_add(number.checked_mul(UNITS[index].1)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(250));
        assert_eq!(parse_duration("30s"), Some(30_000));
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("2d"), Some(172_800_000));
        assert_eq!(parse_duration("1m30s500ms"), Some(90_500));
        assert_eq!(parse_duration("0s"), Some(0));
        for bad in ["", "5", "m", "5x", "30m1h", "1s1s", "1.5h", "-1s", "5 m"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
