//! The cross-checks of `#[cached]`: what the function and its options must satisfy together.
//! Each failure is an error at the user's own tokens; every independent one is reported.

use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{GenericParam, Ident, ItemFn, Signature, Type};

use crate::ast::{Function, Param};
use crate::attr::{CachedArgs, Store};
use crate::ctxt::Errors;
use crate::template::{self, Piece};

/// A sync function is cached on the memory store only: Redis is reached through an async
/// client. The error sits on the `fn` token, and says both ways out.
pub(crate) fn asyncness(sig: &Signature, args: &CachedArgs, errors: &mut Errors) {
    if sig.asyncness.is_none() && args.store != Store::Memory {
        let store = if args.store == Store::Redis {
            "redis"
        } else {
            "tiered"
        };
        errors.at(
            sig.fn_token.span,
            format!(
                "#[cached] caches a sync function on the memory store only: write `async fn` to use `store = \"{store}\"`, or leave `store` out to cache it in memory"
            ),
        );
    }
}

/// Checks the function against its options, and returns the key template, parsed, if it has
/// one and it is sound.
pub(crate) fn cached(
    func: &ItemFn,
    args: &CachedArgs,
    model: &Function,
    errors: &mut Errors,
) -> Option<Vec<Piece>> {
    let generics: Vec<Ident> = func
        .sig
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(t.ident.clone()),
            GenericParam::Const(c) => Some(c.ident.clone()),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    key_types(model, &generics, errors);
    skipped(args, model, errors);
    value(model, &generics, errors);
    store(args, errors);
    args.key
        .as_ref()
        .and_then(|lit| key_template(lit, &model.params, errors))
}

/// Every key parameter has one concrete type.
fn key_types(model: &Function, generics: &[Ident], errors: &mut Errors) {
    for param in model.key_params() {
        if let Some(generic) = mentions_generic(&param.ty, generics) {
            let ident = &param.ident;
            errors.at(
                generic,
                format!(
                    "#[cached] cannot hash `{ident}`: its type is generic, and a cached function's \
                     key must have one concrete type; give it a concrete type or leave it out of \
                     the key with `skip({ident})`"
                ),
            );
        }
    }
}

/// Every name in `skip(...)` is a parameter.
fn skipped(args: &CachedArgs, model: &Function, errors: &mut Errors) {
    for skipped in &args.skip {
        let known =
            model.params.iter().any(|p| p.ident == *skipped) || (model.method && skipped == "self");
        if !known {
            let names: Vec<String> = model
                .params
                .iter()
                .map(|p| format!("`{}`", p.ident))
                .collect();
            let list = if names.is_empty() {
                "it has none".to_owned()
            } else {
                format!("its parameters are {}", names.join(", "))
            };
            errors.at(
                skipped.span(),
                format!("`skip({skipped})`: this function has no parameter `{skipped}`; {list}"),
            );
        }
    }
}

/// The stored value can live in a static: owned, named without `Self`, one concrete type.
fn value(model: &Function, generics: &[Ident], errors: &mut Errors) {
    let value = &model.value;
    if let Some(span) = borrows(value) {
        errors.at(
            span,
            "#[cached] keeps values after the call returns, so the cached value cannot borrow: return an owned type (`String` for `&str`, `Vec<T>` for `&[T]`, `Arc<T>` to share)",
        );
    } else if let Some(span) = mentions_self(value) {
        errors.at(
            span,
            "#[cached] keeps values in a static, where `Self` cannot be named: write the type's own name",
        );
    } else if let Some(generic) = mentions_generic(value, generics) {
        errors.at(
            generic,
            "#[cached] cannot store a value of a generic type: the cache of a function holds one concrete type",
        );
    }
}

/// The options that only make sense with some stores.
fn store(args: &CachedArgs, errors: &mut Errors) {
    match args.store {
        Store::Memory => {
            if let Some(span) = args.format_span {
                errors.at(
                    span,
                    "`format` applies to stores that keep bytes: add `store = \"redis\"`, or leave `format` out (the memory store keeps the value itself)",
                );
            }
            if let Some(key) = &args.key {
                errors.at(
                    key.span(),
                    "`key = \"…\"` names a Redis key: add `store = \"redis\"`, or leave `key` out",
                );
            }
        }
        Store::Redis | Store::Tiered => {
            let store = if args.store == Store::Redis {
                "redis"
            } else {
                "tiered"
            };
            if args.ttl.is_none() {
                let span = args.store_span.unwrap_or_else(proc_macro2::Span::call_site);
                errors.at(
                    span,
                    format!("`store = \"{store}\"` needs a `ttl`: an entry with no expiry in a shared store never leaves; add one, e.g. `ttl = \"10m\"`"),
                );
            }
            if args.store == Store::Redis {
                if let Some(span) = args.capacity_span {
                    errors.at(
                        span,
                        "`capacity` bounds a memory store; Redis evicts by its own `maxmemory` policy: leave `capacity` out, or use `store = \"tiered\"`",
                    );
                }
            }
        }
    }
    if let (Some(span), Some(_)) = (args.version_span, &args.key) {
        errors.at(
            span,
            "with `key = \"…\"` the Redis key is exactly the template, so `version` would change nothing: put the version in the template, as in `key = \"user:v2:{id}\"`",
        );
    }
    match (args.store, args.l1_ttl, args.ttl) {
        (Store::Tiered, Some((l1, span)), Some(ttl)) if l1 > ttl => errors.at(
            span,
            "`l1_ttl` is how long the memory tier keeps an entry, within its `ttl`: make it no longer than `ttl`",
        ),
        (Store::Memory | Store::Redis, Some((_, span)), _) => errors.at(
            span,
            "`l1_ttl` is the memory tier's ttl of `store = \"tiered\"`: add that store, or leave `l1_ttl` out",
        ),
        _ => {}
    }
}

/// Splits `key = "…"` into literals and parameters and checks it against the parameters:
/// every `{name}` is a key parameter, every key parameter appears, and two parameters are
/// separated by a character escaping never leaves in a value (so no two calls share a key).
fn key_template(lit: &syn::LitStr, params: &[Param], errors: &mut Errors) -> Option<Vec<Piece>> {
    let span = lit.span();
    let text = lit.value();
    let pieces = match template::parse(&text) {
        Ok(pieces) => pieces,
        Err(why) => {
            errors.at(span, format!("invalid key template: {why}"));
            return None;
        }
    };
    let mut ok = true;
    for piece in &pieces {
        let Piece::Param(name) = piece else { continue };
        match params.iter().find(|p| p.ident == name.as_str()) {
            None => {
                ok = false;
                let names: Vec<String> = params
                    .iter()
                    .filter(|p| p.key)
                    .map(|p| format!("`{{{}}}`", p.ident))
                    .collect();
                errors.at(
                    span,
                    format!(
                        "`{{{name}}}` in the key template is not a parameter of this function; it can name {}",
                        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                    ),
                );
            }
            Some(p) if !p.key => {
                ok = false;
                errors.at(
                    span,
                    format!("`{{{name}}}` is in `skip(...)`: a skipped parameter cannot be part of the key"),
                );
            }
            Some(_) => {}
        }
    }
    for param in params.iter().filter(|p| p.key) {
        if !pieces.contains(&Piece::Param(param.ident.to_string())) {
            ok = false;
            errors.at(
                param.ident.span(),
                format!(
                    "`{0}` is missing from `key = {1:?}`: two calls differing only in `{0}` would share an entry; \
                     add `{{{0}}}` to the template, or leave it out of the key with `skip({0})`",
                    param.ident, text
                ),
            );
        }
    }
    // The runtime's `template::is_value_char`: what escaping keeps, and the `%` of an escape.
    let is_value_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '%');
    for window in pieces.windows(3) {
        if let [Piece::Param(a), Piece::Literal(between), Piece::Param(b)] = window {
            if between.chars().all(is_value_char) {
                ok = false;
                errors.at(
                    span,
                    format!("`{between}` does not separate `{{{a}}}` from `{{{b}}}`: a value may hold letters, digits, `_`, `.`, `-` and `%`, so two different calls could build the same key; put a character such as `:` between them"),
                );
            }
        }
    }
    for pair in pieces.windows(2) {
        if let [Piece::Param(a), Piece::Param(b)] = pair {
            ok = false;
            errors.at(
                span,
                format!("put a separator such as `:` between `{{{a}}}` and `{{{b}}}`: two adjacent values could be split in more than one way"),
            );
        }
    }
    ok.then_some(pieces)
}

/// Where `ty` names one of `generics` or is an `impl Trait`, if anywhere.
fn mentions_generic(ty: &Type, generics: &[Ident]) -> Option<proc_macro2::Span> {
    struct Finder<'a> {
        generics: &'a [Ident],
        found: Option<proc_macro2::Span>,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type(&mut self, ty: &'ast Type) {
            if self.found.is_some() {
                return;
            }
            match ty {
                Type::ImplTrait(it) => self.found = Some(it.span()),
                Type::Path(p) if p.qself.is_none() => {
                    if let Some(first) = p.path.segments.first() {
                        if self.generics.contains(&first.ident) {
                            self.found = Some(first.ident.span());
                            return;
                        }
                    }
                    syn::visit::visit_type(self, ty);
                }
                _ => syn::visit::visit_type(self, ty),
            }
        }
    }
    impl<'ast> Finder<'_> {
        fn check_expr_path(&mut self, path: &'ast syn::ExprPath) {
            if self.found.is_none() {
                if let Some(ident) = path.path.get_ident() {
                    if self.generics.contains(ident) {
                        self.found = Some(ident.span());
                    }
                }
            }
        }
    }
    let mut finder = Finder {
        generics,
        found: None,
    };
    finder.visit_type(ty);
    if finder.found.is_none() {
        // Const generics hide in array lengths: `[u32; N]`.
        struct Lengths<'a, 'b>(&'a mut Finder<'b>);
        impl<'ast> Visit<'ast> for Lengths<'_, '_> {
            fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
                self.0.check_expr_path(path);
            }
        }
        Lengths(&mut finder).visit_type(ty);
    }
    finder.found
}

/// Where `ty` borrows (a reference or a lifetime other than `'static`), if anywhere.
pub(crate) fn borrows(ty: &Type) -> Option<proc_macro2::Span> {
    struct Finder(Option<proc_macro2::Span>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            let is_static = r.lifetime.as_ref().is_some_and(|l| l.ident == "static");
            if self.0.is_none() && !is_static {
                self.0 = Some(r.and_token.span);
            }
            syn::visit::visit_type_reference(self, r);
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            if self.0.is_none() && l.ident != "static" {
                self.0 = Some(l.span());
            }
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// Where `ty` names `Self`, if anywhere.
fn mentions_self(ty: &Type) -> Option<proc_macro2::Span> {
    struct Finder(Option<proc_macro2::Span>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_ident(&mut self, ident: &'ast Ident) {
            if self.0.is_none() && ident == "Self" {
                self.0 = Some(ident.span());
            }
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}
