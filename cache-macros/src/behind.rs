//! `#[write_behind(f(args), value = p, …)]`: the cache now, the database later.
//!
//! The target is written and checked as an `#[invalidates]` target (see [`crate::write`]) and
//! its key computed before anything moves. The function becomes: wait for room, store `p`'s
//! value, queue the body, return `Ok(())` (or `()`). The body, rewritten into a closure that
//! clones the arguments for each run (a retry runs it again), runs later on a task of the
//! runtime's (`cache-runtime/src/behind`), which is where every rule of ordering, coalescing
//! and retrying lives.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, Ident, ItemFn, Lit, Pat, Token, Type};

use crate::ast::{self, Returns};
use crate::attr::parse_duration;
use crate::check::borrows;
use crate::ctxt::Errors;
use crate::write::{async_fn, typed_body, Target};

const HELP: &str = "name the cached call whose entry the value replaces, and the parameter \
                    that becomes its value: `#[write_behind(get_user(id), value = user)]`";

/// The options of one `#[write_behind(...)]`.
struct Options {
    target: Target,
    value: Ident,
    capacity: Option<usize>,
    delay_ms: u64,
    retries: Option<u32>,
    coalesce: bool,
}

/// `#[write_behind(args)] item`, errors included: on error the function is emitted as
/// written, beside the errors.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let func = match async_fn(
        item,
        "write_behind",
        "waits for room in its queue",
        &mut errors,
    ) {
        Ok(func) => func,
        Err(item) => return item,
    };
    let params = params(&func, &mut errors);
    let is_result = returns(&func, &mut errors);
    let options = parse(args, &params, &mut errors);
    match (errors.finish(), options) {
        (Ok(()), Some(options)) => generate(&func, &params, &options, is_result),
        (result, _) => {
            let err = result
                .err()
                .unwrap_or_else(|| syn::Error::new(Span::call_site(), HELP));
            let err = err.into_compile_error();
            let func = func.into_token_stream();
            quote!(#func #err)
        }
    }
}

/// The parameters, each a name with an owned type: the body runs after the call returned.
fn params(func: &ItemFn, errors: &mut Errors) -> Vec<(Ident, bool, Type)> {
    let mut params = Vec::new();
    for input in &func.sig.inputs {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                errors.at(
                    receiver.span(),
                    "#[write_behind] runs the body after the call returned, when no borrow of \
                     `self` is left: make it an associated function taking what it needs, owned \
                     (`db: Arc<Db>`)",
                );
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        let (ident, mutable) = match &*typed.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                (p.ident.clone(), p.mutability.is_some())
            }
            other => {
                errors.at(
                    other.span(),
                    "#[write_behind] needs a name for each parameter: write `name: Type` and \
                     destructure it inside the body",
                );
                continue;
            }
        };
        if let Some(span) = borrows(&typed.ty) {
            errors.at(
                span,
                format!(
                    "#[write_behind] runs the body later, after the caller's borrows have ended: \
                     `{ident}` must be owned (`Arc<Db>` for `&Db`, `String` for `&str`)"
                ),
            );
        }
        params.push((ident, mutable, (*typed.ty).clone()));
    }
    params
}

/// Whether the function returns `Result<(), E>` (else `()`); anything else is an error.
fn returns(func: &ItemFn, errors: &mut Errors) -> bool {
    let unit = |ty: &Type| matches!(ty, Type::Tuple(t) if t.elems.is_empty());
    match ast::returns(&func.sig.output) {
        Returns::Result(ok) if unit(&ok) => true,
        Returns::Other(ty) if unit(&ty) => false,
        _ => {
            errors.at(
                func.sig.output.span(),
                "#[write_behind] returns as soon as the write is queued, before the body has \
                 produced anything: return `Result<(), E>` (retried on `Err`) or `()`",
            );
            false
        }
    }
}

fn parse(
    args: TokenStream,
    params: &[(Ident, bool, Type)],
    errors: &mut Errors,
) -> Option<Options> {
    let exprs = match Punctuated::<Expr, Token![,]>::parse_terminated.parse2(args) {
        Ok(exprs) => exprs,
        Err(err) => {
            errors.push(err);
            return None;
        }
    };
    let mut target = None;
    let mut value = None;
    let mut value_given = false;
    let mut capacity = None;
    let mut delay_ms = None;
    let mut retries = None;
    let mut coalesce = None;
    for expr in exprs {
        match expr {
            Expr::Call(call) => {
                let Expr::Path(func) = &*call.func else {
                    errors.at(call.func.span(), HELP);
                    continue;
                };
                if func.path.is_ident("all") {
                    errors.at(
                        func.span(),
                        "#[write_behind] stores one entry: name one call, `get_user(id)`",
                    );
                } else if target.is_some() {
                    errors.at(
                        call.span(),
                        "#[write_behind] stores its value under one entry: name one call",
                    );
                } else {
                    target = Some(Target::Entry {
                        path: func.clone(),
                        args: call.args.iter().cloned().collect(),
                        span: call.span(),
                    });
                }
            }
            Expr::Assign(assign) => {
                let Expr::Path(left) = &*assign.left else {
                    errors.at(assign.left.span(), HELP);
                    continue;
                };
                let Some(name) = left.path.get_ident() else {
                    errors.at(left.span(), HELP);
                    continue;
                };
                let right = &*assign.right;
                let duplicate = |errors: &mut Errors| {
                    errors.at(
                        name.span(),
                        format!("duplicate option `{name}`: give it once"),
                    );
                };
                match name.to_string().as_str() {
                    "value" => {
                        value_given = true;
                        let param = match right {
                            Expr::Path(p) => p.path.get_ident().cloned(),
                            _ => None,
                        };
                        match param {
                            Some(p) if params.iter().any(|(ident, _, _)| *ident == p) => {
                                if value.replace(p).is_some() {
                                    duplicate(errors);
                                }
                            }
                            _ => errors.at(
                                right.span(),
                                "`value` names one of this function's parameters, the one whose \
                                 value becomes the cached entry: `value = user`",
                            ),
                        }
                    }
                    "capacity" => match int(right) {
                        Some(n) if n > 0 => {
                            if capacity.replace(n as usize).is_some() {
                                duplicate(errors);
                            }
                        }
                        _ => errors.at(
                            right.span(),
                            "`capacity` is how many writes may wait at most, more than zero: \
                             `capacity = 10_000`",
                        ),
                    },
                    "retries" => match int(right).and_then(|n| u32::try_from(n).ok()) {
                        Some(n) => {
                            if retries.replace(n).is_some() {
                                duplicate(errors);
                            }
                        }
                        _ => errors.at(
                            right.span(),
                            "`retries` is how many times a failed write runs again: `retries = 3`",
                        ),
                    },
                    "delay" => match right {
                        Expr::Lit(ExprLit {
                            lit: Lit::Str(s), ..
                        }) if parse_duration(&s.value()).is_some() => {
                            if delay_ms.replace(parse_duration(&s.value())?).is_some() {
                                duplicate(errors);
                            }
                        }
                        Expr::Lit(ExprLit {
                            lit: Lit::Int(_), ..
                        }) if int(right).is_some() => {
                            // Whole seconds, as `ttl = 60` reads.
                            let ms = int(right)?.saturating_mul(1000);
                            if delay_ms.replace(ms).is_some() {
                                duplicate(errors);
                            }
                        }
                        _ => errors.at(
                            right.span(),
                            "`delay` is how long a write waits for a newer one of its key: \
                             `delay = \"50ms\"` (`ms`, `s`, `m` parts) or whole seconds",
                        ),
                    },
                    "coalesce" => match right {
                        Expr::Lit(ExprLit {
                            lit: Lit::Bool(b), ..
                        }) => {
                            if coalesce.replace(b.value).is_some() {
                                duplicate(errors);
                            }
                        }
                        _ => errors.at(right.span(), "`coalesce` is `true` or `false`"),
                    },
                    _ => errors.at(
                        name.span(),
                        "unknown option; #[write_behind] takes `value = param`, `capacity = N`, \
                         `delay = \"50ms\"`, `retries = N` and `coalesce = false`",
                    ),
                }
            }
            other => errors.at(other.span(), HELP),
        }
    }
    let Some(target) = target else {
        errors.at(Span::call_site(), HELP);
        return None;
    };
    let Some(value) = value else {
        if value_given {
            return None;
        }
        errors.at(
            Span::call_site(),
            "name the parameter whose value becomes the cached entry: `value = user`",
        );
        return None;
    };
    Some(Options {
        target,
        value,
        capacity,
        delay_ms: delay_ms.unwrap_or(0),
        retries,
        coalesce: coalesce.unwrap_or(true),
    })
}

fn int(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().ok(),
        _ => None,
    }
}

fn generate(
    func: &ItemFn,
    params: &[(Ident, bool, Type)],
    options: &Options,
    is_result: bool,
) -> TokenStream {
    let attrs = &func.attrs;
    let shared: Vec<_> = attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"))
        .collect();
    let vis = &func.vis;
    let sig = &func.sig;
    let ident = &sig.ident;
    let stmts = &func.block.stmts;
    let ret_ty = ast::return_type(&sig.output);

    let name = ident.to_string();
    let capacity = match options.capacity {
        Some(n) => quote!(#n),
        None => quote!(::cachette::__private::DEFAULT_CAPACITY),
    };
    let retries = match options.retries {
        Some(n) => quote!(#n),
        None => quote!(::cachette::__private::DEFAULT_RETRIES),
    };
    let delay_ms = options.delay_ms;
    let coalesce = options.coalesce;
    let queue_fn = format_ident!("__cachette_behind_{}", ident, span = ident.span());
    let stats = format_ident!("{}_stats", ident);
    let doc_stats = format!("The write-behind counters of `{name}`.");

    let checks = params.iter().map(
        |(param, _, ty)| quote_spanned!(ty.span()=> ::cachette::__private::BehindArg::check(&#param);),
    );
    let target = options.target.expr();
    let target = match &options.target {
        Target::Entry { span, .. } => quote_spanned!(*span=> let __cachette_target = #target;),
        Target::All { .. } => quote!(),
    };
    let value = &options.value;
    // A value of another type than the target's is one error, at the user's `value = p`.
    let value = quote_spanned!(value.span()=>
        if false {
            __cachette_target.value_type()
        } else {
            ::core::clone::Clone::clone(&#value)
        }
    );
    let rebind = params.iter().map(|(param, mutable, _)| {
        let mutability = mutable.then(|| quote!(mut));
        quote!(let #mutability #param = ::core::clone::Clone::clone(&#param);)
    });
    let accepted = if is_result {
        quote!(::core::result::Result::Ok(()))
    } else {
        quote!()
    };
    let queue = quote!(#queue_fn());

    let typed = typed_body(&ret_ty, stmts);
    let body = quote! {
        #(#checks)*
        #target
        let __cachette_value = #value;
        let __cachette_body = move || {
            #(#rebind)*
            async move {
                let __cachette_ret: #ret_ty = #typed.await;
                ::cachette::__private::BodyResult::into_write(__cachette_ret)
            }
        };
        __cachette_queue
            .submit(__cachette_target, __cachette_value, __cachette_body)
            .await;
        #accepted
    };
    quote! {
        #(#attrs)*
        #[allow(clippy::redundant_clone)]
        #vis #sig {
            let __cachette_queue = #queue;
            #body
        }

        #[doc(hidden)]
        #(#shared)*
        #[allow(dead_code)]
        #vis fn #queue_fn() -> &'static ::cachette::__private::WriteBehind {
            static __CACHETTE_BEHIND: ::cachette::__private::WriteBehind =
                ::cachette::__private::WriteBehind::new(::cachette::__private::BehindSpec {
                    module: ::core::module_path!(),
                    function: #name,
                    capacity: #capacity,
                    delay: ::core::time::Duration::from_millis(#delay_ms),
                    retries: #retries,
                    coalesce: #coalesce,
                });
            &__CACHETTE_BEHIND
        }

        #[doc = #doc_stats]
        #(#shared)*
        #[allow(dead_code)]
        #vis fn #stats() -> ::cachette::WriteBehindStats {
            #queue.stats()
        }
    }
}
