//! The model of a function `#[cached]` is put on: its parameters, what it returns, and which
//! results are stored. Built once; the checks and the code generator read it, and the write
//! paths classify their own return types with the same [`returns`].

use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

use crate::attr::CachedArgs;
use crate::ctxt::Errors;

/// One parameter other than `self`.
pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// Part of the key (not skipped).
    pub(crate) key: bool,
}

/// What a function returns, by the shape of its return type.
pub(crate) enum Returns {
    /// `Result<T, E>` (any path ending in `Result`, so `io::Result<T>` too), with `T`.
    Result(Type),
    /// `Option<T>`, with `T`.
    Option(Type),
    /// Anything else, `()` for no return type.
    Other(Type),
}

/// Classifies a return type by its last path segment and first type argument, so that
/// `io::Result<T>` and `anyhow::Result<T>` count as `Result`.
pub(crate) fn returns(output: &ReturnType) -> Returns {
    let ty = return_type(output);
    if let Type::Path(path) = &ty {
        if path.qself.is_none() {
            if let Some(last) = path.path.segments.last() {
                if let PathArguments::AngleBracketed(generic) = &last.arguments {
                    let first = generic.args.iter().find_map(|a| match a {
                        GenericArgument::Type(t) => Some(t.clone()),
                        _ => None,
                    });
                    match (last.ident.to_string().as_str(), first) {
                        ("Result", Some(t)) => return Returns::Result(t),
                        ("Option", Some(t)) => return Returns::Option(t),
                        _ => {}
                    }
                }
            }
        }
    }
    Returns::Other(ty)
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

/// A cached function, as the expansion sees it.
pub(crate) struct Function {
    /// Takes `self`.
    pub(crate) method: bool,
    pub(crate) params: Vec<Param>,
    pub(crate) mode: Mode,
    /// The type of a stored value.
    pub(crate) value: Type,
}

impl Function {
    /// Reads the function's parameters and return type. A parameter without a name (a
    /// destructuring pattern) is an error: generated code must pass it on by name.
    pub(crate) fn from_fn(func: &ItemFn, args: &CachedArgs, errors: &mut Errors) -> Self {
        let mut method = false;
        let mut params = Vec::new();
        for input in &func.sig.inputs {
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
            params.push(Param {
                ident,
                ty: (*typed.ty).clone(),
                key,
            });
        }
        let (mode, value) = match returns(&func.sig.output) {
            Returns::Result(t) => (Mode::Result, t),
            Returns::Option(t) if !args.cache_none => (Mode::Option, t),
            Returns::Option(_) => (Mode::Always, return_type(&func.sig.output)),
            Returns::Other(t) => (Mode::Always, t),
        };
        Function {
            method,
            params,
            mode,
            value,
        }
    }

    /// The parameters that make up the key, in order.
    pub(crate) fn key_params(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| p.key)
    }
}

/// The declared return type, `()` for none.
pub(crate) fn return_type(output: &ReturnType) -> Type {
    match output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    }
}
