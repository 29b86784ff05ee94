//! `#[invalidates(...)]` and `#[cache_put(...)]`: write paths that keep cached functions honest.
//!
//! A target is written as the call whose result went stale, `get_user(db, id)`. The expansion
//! asks the cached function's hidden target companion (see [`crate::hidden`]) for the entry of
//! that call, with each argument borrowed, so rustc checks the arguments against the cached
//! function's own parameters, and the key is computed before the body may move them. A target
//! named by one identifier goes through the function itself,
//! `get_user.__cachette_target_get_user(&db, &id)`, so that a misspelled name is one error on
//! the user's token; a path (`users::get_user`, `Self::find`) calls
//! `users::__cachette_target_get_user(&db, &id)`, and `all(f)` calls `__cachette_fn_f()`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, Token};

use crate::ast::{self, Returns};
use crate::ctxt::Errors;
use crate::hidden;

/// Which attribute is expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Invalidate,
    Put,
}

impl Write {
    fn name(self) -> &'static str {
        match self {
            Write::Invalidate => "invalidates",
            Write::Put => "cache_put",
        }
    }
}

pub(crate) enum Target {
    /// `path::to::f(args…)`: one entry.
    Entry {
        /// `path::to::f` as written.
        path: syn::ExprPath,
        args: Vec<Expr>,
        span: Span,
    },
    /// `all(path::to::f)`: every entry.
    All { path: syn::ExprPath },
}

impl Target {
    /// The expression that yields this target: a `Target` for an entry, a `&CachedFn` for all.
    /// An entry named by one identifier goes through the function itself (a misspelled name
    /// then fails there, once); a path, and `all(f)` (which has no arguments to infer a generic
    /// function's parameters from), call the hidden item beside it.
    pub(crate) fn expr(&self) -> TokenStream {
        match self {
            Target::Entry { path, args, span } => {
                let Some(last) = path.path.segments.last() else {
                    return quote!(#path);
                };
                let target = hidden::target(&last.ident);
                let args = args.iter().map(|a| quote_spanned!(a.span()=> &(#a)));
                if let Some(qself) = &path.qself {
                    // `<PgStore as UserStore>::get`: the hidden items of a trait method live in
                    // an inherent impl of the type ([`crate::impls`]).
                    let ty = &qself.ty;
                    quote_spanned!(*span=> <#ty>::#target(#(#args),*))
                } else if path.path.get_ident().is_some() {
                    quote_spanned!(*span=> #path.#target(#(#args),*))
                } else {
                    let path = with_last(&path.path, target);
                    quote_spanned!(*span=> #path(#(#args),*))
                }
            }
            Target::All { path } => match path.path.segments.last() {
                Some(last) if path.qself.is_some() => {
                    let ty = path.qself.as_ref().map(|q| &q.ty);
                    let accessor = hidden::cached_fn(&last.ident);
                    quote!(<#ty>::#accessor())
                }
                Some(last) => {
                    let path = with_last(&path.path, hidden::cached_fn(&last.ident));
                    quote!(#path())
                }
                None => quote!(#path),
            },
        }
    }
}

/// `#[invalidates(args)] item` or `#[cache_put(args)] item`, errors included: on error the
/// function is emitted as written, beside the errors.
pub(crate) fn expand(kind: Write, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let func = match async_fn(
        item,
        kind.name(),
        "updates caches after the body",
        &mut errors,
    ) {
        Ok(func) => func,
        Err(item) => return item,
    };
    let (targets, before) = parse(kind, args, &mut errors);
    match errors.finish() {
        Ok(()) => generate(kind, &func, &targets, before),
        Err(err) => {
            let err = err.into_compile_error();
            let func = func.into_token_stream();
            quote!(#func #err)
        }
    }
}

/// The `async fn` a write-path attribute `#[{name}]` is on, whose asynchrony it needs
/// because it `{why}`; an item that is no function comes back as written with its error.
pub(crate) fn async_fn(
    item: TokenStream,
    name: &str,
    why: &str,
    errors: &mut Errors,
) -> Result<ItemFn, TokenStream> {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                format!("#[{name}] goes on an `async fn`"),
            );
            let err = err.into_compile_error();
            return Err(quote!(#item #err));
        }
    };
    if func.sig.asyncness.is_none() {
        errors.at(
            func.sig.fn_token.span,
            format!("#[{name}] {why}, which takes an `async fn`: write `async fn`"),
        );
    }
    Ok(func)
}

/// The body's statements as an `async move` block whose output is `ret_ty`, the function's
/// return type, so that `?` and `return` in the body mean what they meant in the function.
pub(crate) fn typed_body(ret_ty: &syn::Type, stmts: &[syn::Stmt]) -> TokenStream {
    quote! {
        async move {
            // Fixes the block's type to the function's, for `?` and `return` in the body.
            #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return)]
            if false {
                let __cachette_fake_return: #ret_ty = loop {};
                return __cachette_fake_return;
            }
            #(#stmts)*
        }
    }
}

/// The targets, and whether `before = true` was given.
fn parse(kind: Write, args: TokenStream, errors: &mut Errors) -> (Vec<Target>, bool) {
    let help = match kind {
        Write::Invalidate => {
            "name the cached call that went stale, with all its arguments: \
             `#[invalidates(get_user(db, id))]`, or every entry: `#[invalidates(all(get_user))]`"
        }
        Write::Put => {
            "name the cached call whose entry the returned value replaces, with all its arguments: \
             `#[cache_put(get_user(db, id))]`"
        }
    };
    let exprs = match Punctuated::<Expr, Token![,]>::parse_terminated.parse2(args) {
        Ok(exprs) => exprs,
        Err(err) => {
            errors.push(err);
            return (Vec::new(), false);
        }
    };
    if exprs.is_empty() {
        errors.at(Span::call_site(), help);
    }
    let mut targets = Vec::new();
    let mut before = None;
    for expr in exprs {
        match expr {
            Expr::Assign(assign) if kind == Write::Invalidate => {
                let is_before = matches!(&*assign.left, Expr::Path(p) if p.path.is_ident("before"));
                match (&*assign.right, is_before) {
                    (Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }), true) => {
                        if before.is_some() {
                            errors.at(assign.left.span(), "duplicate option `before`: give it once");
                        }
                        before = Some(b.value);
                    }
                    (_, true) => errors.at(assign.right.span(), "`before` is `true` or `false`"),
                    (_, false) => errors.at(
                        assign.left.span(),
                        "unknown option; the one option is `before = true`, which also invalidates before the body runs",
                    ),
                }
            }
            Expr::Call(call) => {
                let Expr::Path(func) = &*call.func else {
                    errors.at(call.func.span(), help);
                    continue;
                };
                let path = &func.path;
                if path.is_ident("all") {
                    if kind == Write::Put {
                        errors.at(
                            path.span(),
                            "#[cache_put] stores one entry; to drop every entry use `#[invalidates(all(f))]`",
                        );
                        continue;
                    }
                    match call.args.iter().collect::<Vec<_>>().as_slice() {
                        [Expr::Path(target)] => targets.push(Target::All {
                            path: target.clone(),
                        }),
                        _ => errors.at(
                            call.args.span(),
                            "`all(...)` names one cached function, without arguments: `all(list_users)`",
                        ),
                    }
                    continue;
                }
                targets.push(Target::Entry {
                    path: func.clone(),
                    args: call.args.iter().cloned().collect(),
                    span: call.span(),
                });
            }
            other => errors.at(other.span(), help),
        }
    }
    if kind == Write::Put && targets.len() > 1 {
        errors.at(
            Span::call_site(),
            "#[cache_put] stores the returned value under one entry: name one call",
        );
    }
    (targets, before.unwrap_or(false))
}

/// `a::b::f` with its last segment replaced by `name` (which keeps `f`'s span, so that rustc's
/// "cannot find" lands on the user's name).
fn with_last(path: &syn::Path, name: syn::Ident) -> syn::Path {
    let mut path = path.clone();
    if let Some(last) = path.segments.last_mut() {
        last.ident = name;
    }
    path
}

/// The write path: its targets taken before the body runs, the body, then the caches updated
/// if the body succeeded (a `Result` that is `Ok`; anything else always).
fn generate(kind: Write, func: &ItemFn, targets: &[Target], before: bool) -> TokenStream {
    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    // The body's statements, spliced: a block inside the block would trip `unused_braces`.
    let stmts = &func.block.stmts;
    let ret_ty = ast::return_type(&sig.output);
    let returns = ast::returns(&sig.output);
    let is_result = matches!(returns, Returns::Result(_));

    let ret = quote_spanned!(Span::mixed_site()=> __cachette_ret);
    let names: Vec<syn::Ident> = (0..targets.len())
        .map(|i| format_ident!("__cachette_stale_{}", i, span = Span::mixed_site()))
        .collect();
    // Keys first: the body may move the arguments.
    let bindings = targets.iter().zip(&names).map(|(target, name)| {
        let expr = target.expr();
        match target {
            Target::Entry { span, .. } => quote_spanned!(*span=> let #name = #expr;),
            Target::All { .. } => quote!(let #name = #expr;),
        }
    });
    let invalidate_all = targets
        .iter()
        .zip(&names)
        .map(|(target, name)| match target {
            Target::Entry { .. } => quote!(#name.invalidate().await;),
            Target::All { .. } => quote!(#name.clear().await;),
        });
    let invalidate_all: Vec<TokenStream> = invalidate_all.collect();
    let before = if before {
        quote!(#(#invalidate_all)*)
    } else {
        quote!()
    };
    let after = match kind {
        Write::Invalidate => {
            let when = if is_result {
                quote!(#ret.is_ok())
            } else {
                quote!(true)
            };
            // In a task of its own: a caller that drops the mutator's future once the body has
            // written must not leave the caches stale.
            quote! {
                if #when {
                    ::cachette::__private::settle(async move {
                        #(#invalidate_all)*
                    })
                    .await;
                }
            }
        }
        Write::Put => {
            let (Some(name), Some(Target::Entry { span, .. })) = (names.first(), targets.first())
            else {
                return quote!(#func);
            };
            // Spanned at the user's target, so a value of the wrong type is reported there.
            // `entry_of` takes the value or an `Option` of it (`None` drops the entry).
            let put = quote_spanned!(*span=>
                let __cachette_entry = #name.entry_of(__cachette_value);
                ::cachette::__private::settle(async move {
                    #name.put_entry(__cachette_entry).await;
                })
                .await;
            );
            if is_result {
                quote! {
                    if let ::core::result::Result::Ok(__cachette_value) = &#ret {
                        #put
                    }
                }
            } else {
                quote! {
                    let __cachette_value = &#ret;
                    #put
                }
            }
        }
    };

    let body = typed_body(&ret_ty, stmts);
    quote! {
        #(#attrs)*
        #vis #sig {
            #(#bindings)*
            #before
            let #ret: #ret_ty = #body.await;
            #after
            #ret
        }
    }
}
