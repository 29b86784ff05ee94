//! `#[cached_impl]`: tells the `#[cached]` functions of one `impl` block where they are.
//!
//! An attribute on a function cannot see the block around it, and two places need to be
//! told: an associated function without `self` (whose hidden items and companions are
//! reached through `Self::`, like a method's, not by their bare names like a free function's),
//! and a trait impl (which may hold only the trait's items). Here each `#[cached]` function of
//! the block is expanded knowing both. In an inherent impl its items stay in the block; in a
//! trait impl only the function itself does, and the rest goes to an inherent impl of the
//! same type beside it, with `pub(crate)` visibility.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::spanned::Spanned;
use syn::{ImplItem, ItemFn, ItemImpl, Meta};

use crate::expand::{self, Place};

/// `#[cached_impl] impl … { … }`, errors included.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut imp: ItemImpl = match syn::parse2(item.clone()) {
        Ok(imp) => imp,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                "#[cached_impl] goes on an `impl` block whose functions carry `#[cached]`",
            )
            .into_compile_error();
            return quote!(#item #err);
        }
    };
    let mut errors = TokenStream::new();
    if !args.is_empty() {
        errors.extend(
            syn::Error::new(
                args.span(),
                "#[cached_impl] takes no options: give them to each `#[cached(...)]` inside",
            )
            .into_compile_error(),
        );
    }
    let place = Place::Impl {
        trait_impl: imp.trait_.is_some(),
    };
    let mut siblings = Vec::new();
    let mut uses = TokenStream::new();
    let mut found = false;
    for item in &mut imp.items {
        let ImplItem::Fn(method) = item else { continue };
        let Some(at) = method.attrs.iter().position(is_cached) else {
            continue;
        };
        found = true;
        let attr = method.attrs.remove(at);
        // The attribute is expanded here, not by rustc: a use of its path keeps the user's
        // import of it used.
        let path = attr.path();
        uses.extend(quote!(const _: () = { use #path as _; };));
        let args = match attr.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens,
            Meta::NameValue(nv) => {
                errors.extend(
                    syn::Error::new(nv.span(), "write `#[cached(option = …)]`")
                        .into_compile_error(),
                );
                continue;
            }
        };
        let func = ItemFn {
            attrs: method.attrs.clone(),
            vis: method.vis.clone(),
            sig: method.sig.clone(),
            block: Box::new(method.block.clone()),
        };
        let out = expand::cached_in(args, func, place);
        if imp.trait_.is_some() {
            *item = ImplItem::Verbatim(out.wrapper);
            siblings.push(out.siblings);
        } else {
            let wrapper = out.wrapper;
            let rest = out.siblings;
            *item = ImplItem::Verbatim(quote!(#wrapper #rest));
        }
    }
    if !found {
        errors.extend(
            syn::Error::new(
                imp.impl_token.span,
                "#[cached_impl] expands the `#[cached]` functions of its block, and this one has none: add `#[cached]` to a function, or remove `#[cached_impl]`",
            )
            .into_compile_error(),
        );
    }
    let beside = if siblings.is_empty() {
        TokenStream::new()
    } else {
        let (impl_generics, _, where_clause) = imp.generics.split_for_impl();
        let self_ty = &imp.self_ty;
        quote! {
            impl #impl_generics #self_ty #where_clause {
                #(#siblings)*
            }
        }
    };
    let imp = imp.into_token_stream();
    quote!(#imp #beside #uses #errors)
}

/// `#[cached(...)]`, `#[cachette::cached(...)]`.
fn is_cached(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "cached")
}
