//! What `#[cached]` checks about the function it is put on, and what it learns from it.

use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    FnArg, GenericArgument, GenericParam, Ident, ItemFn, Pat, PathArguments, ReturnType, Type,
};

use crate::attr::{CachedArgs, Errors};

/// One parameter other than `self`.
pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// Part of the key (not skipped).
    pub(crate) key: bool,
}

/// Which results are stored, by the return type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `Result<T, E>`: `Ok` only.
    Result,
    /// `Option<T>`: `Some` only.
    Option,
    /// Anything else, and `Option` with `cache_none = true`.
    Always,
}

/// What the expansion needs to know about the function.
pub(crate) struct Plan {
    pub(crate) method: bool,
    pub(crate) params: Vec<Param>,
    pub(crate) mode: Mode,
    pub(crate) value: Type,
}

pub(crate) fn check(func: &ItemFn, args: &CachedArgs, errors: &mut Errors) -> Plan {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            "#[cached] caches async functions: write `async fn`",
        );
    }
    let generics: Vec<Ident> = sig
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(t.ident.clone()),
            GenericParam::Const(c) => Some(c.ident.clone()),
            GenericParam::Lifetime(_) => None,
        })
        .collect();

    let mut method = false;
    let mut params = Vec::new();
    for input in &sig.inputs {
        let typed = match input {
            FnArg::Receiver(_) => {
                method = true;
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        let ident = match &*typed.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            other => {
                errors.at(
                    other.span(),
                    "#[cached] needs a name for each parameter: write `name: Type` and destructure it inside the body",
                );
                continue;
            }
        };
        let key = !args.skip.contains(&ident);
        if key {
            if let Some(generic) = mentions_generic(&typed.ty, &generics) {
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
        params.push(Param {
            ident,
            ty: (*typed.ty).clone(),
            key,
        });
    }

    for skipped in &args.skip {
        let known = params.iter().any(|p| p.ident == *skipped) || (method && skipped == "self");
        if !known {
            let names: Vec<String> = params.iter().map(|p| format!("`{}`", p.ident)).collect();
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

    let (mode, value) = match &sig.output {
        ReturnType::Default => (Mode::Always, syn::parse_quote!(())),
        ReturnType::Type(_, ty) => classify(ty, args.cache_none),
    };
    if let Some(span) = mentions_self(&value) {
        errors.at(
            span,
            "#[cached] keeps values in a static, where `Self` cannot be named: write the type's own name",
        );
    } else if let Some(generic) = mentions_generic(&value, &generics) {
        errors.at(
            generic,
            "#[cached] cannot store a value of a generic type: the cache of a function holds one concrete type",
        );
    }
    Plan {
        method,
        params,
        mode,
        value,
    }
}

/// The mode and stored type for a return type: by the last path segment, so `io::Result<T>`
/// and `anyhow::Result<T>` count as `Result`.
fn classify(ty: &Type, cache_none: bool) -> (Mode, Type) {
    if let Type::Path(path) = ty {
        if path.qself.is_none() {
            if let Some(last) = path.path.segments.last() {
                if let PathArguments::AngleBracketed(generic) = &last.arguments {
                    let first = generic.args.iter().find_map(|a| match a {
                        GenericArgument::Type(t) => Some(t.clone()),
                        _ => None,
                    });
                    match (last.ident.to_string().as_str(), first) {
                        ("Result", Some(t)) => return (Mode::Result, t),
                        ("Option", Some(t)) if !cache_none => return (Mode::Option, t),
                        _ => {}
                    }
                }
            }
        }
    }
    (Mode::Always, ty.clone())
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
    let mut finder = Finder {
        generics,
        found: None,
    };
    finder.visit_type(ty);
    finder.found
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
