//! The code `#[cached]` writes: the function as the user declared it, calling the cache; the
//! user's body, untouched, as `{name}_uncached`; the companions; and the static behind them.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, ItemFn, Pat};

use crate::attr::{self, Errors, Format, Store};
use crate::valid::{self, Mode, Piece, Plan};

/// `#[cached(args)] item`, errors included: on error the function is emitted as written, beside
/// the errors, so one mistake does not bury the file in "cannot find function" noise.
pub(crate) fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                "#[cached] goes on an `async fn`, free or in an inherent `impl` block",
            );
            return with_error(item, err);
        }
    };
    let mut errors = Errors::default();
    let args = attr::parse(args, &mut errors);
    let plan = valid::check(&func, &args, &mut errors);
    match errors.finish() {
        Ok(()) => expand(&func, &args, &plan),
        Err(err) => with_error(func.into_token_stream(), err),
    }
}

fn with_error(item: TokenStream, err: syn::Error) -> TokenStream {
    let err = err.into_compile_error();
    quote!(#item #err)
}

/// Attributes that must follow every item generated from the function.
fn is_shared(attr: &Attribute) -> bool {
    [
        // Not `expect` (unfulfilled on companions) nor `forbid` (it would clash with the
        // `allow(dead_code)` they carry): those stay on the function as written.
        "cfg", "cfg_attr", "allow", "warn", "deny",
    ]
    .iter()
    .any(|name| attr.path().is_ident(name))
}

fn expand(func: &ItemFn, args: &attr::CachedArgs, plan: &Plan) -> TokenStream {
    let vis = &func.vis;
    let sig = &func.sig;
    let ident = &sig.ident;
    let name = ident.to_string();
    let value = &plan.value;
    let shared: Vec<&Attribute> = func.attrs.iter().filter(|a| is_shared(a)).collect();
    let own_attrs = &func.attrs;

    let uncached = format_ident!("{}_uncached", ident);
    let invalidate = format_ident!("{}_invalidate", ident);
    let clear = format_ident!("{}_clear", ident);
    let stats = format_ident!("{}_stats", ident);
    let accessor = accessor_ident(ident);
    let key_fn = key_fn_ident(ident);

    // Locals of generated code: mixed-site, so they can never meet the user's names.
    let cached_fn = quote_spanned!(Span::mixed_site()=> __cachette_fn);
    let key = quote_spanned!(Span::mixed_site()=> __cachette_key);

    let access = if plan.method {
        quote!(Self::#accessor())
    } else {
        quote!(#accessor())
    };
    let names: Vec<_> = plan.params.iter().map(|p| &p.ident).collect();
    let call_uncached = if plan.method {
        quote!(Self::#uncached(self, #(#names),*))
    } else {
        quote!(#uncached(#(#names),*))
    };
    // The one place a key is computed: `__cachette_keyof_{name}(&key args…)`. Each argument
    // goes in with its type's span, so a missing `Serialize` is reported at that parameter.
    let keyof = format_ident!("__cachette_keyof_{}", ident);
    let keyof_call = if plan.method {
        quote!(Self::#keyof)
    } else {
        quote!(#keyof)
    };
    let key_idents: Vec<&syn::Ident> = plan
        .params
        .iter()
        .filter(|p| p.key)
        .map(|p| &p.ident)
        .collect();
    let key_expr = match &plan.template {
        None => {
            let builder = quote_spanned!(Span::mixed_site()=> __cachette_builder);
            let steps = plan.params.iter().filter(|p| p.key).map(|p| {
                let ident = &p.ident;
                quote_spanned!(p.ty.span()=> #builder.arg(#ident);)
            });
            quote!({
                let mut #builder = ::cachette::__private::KeyBuilder::new();
                #(#steps)*
                #access.digest_key(#builder.finish())
            })
        }
        Some(pieces) => {
            let steps = pieces.iter().map(|piece| match piece {
                Piece::Literal(text) => quote!(.lit(#text)),
                Piece::Param(name) => {
                    let param = plan.params.iter().find(|p| p.ident == name.as_str());
                    let ident = param
                        .map(|p| p.ident.clone())
                        .unwrap_or_else(|| format_ident!("{}", name));
                    let span = param.map_or_else(Span::call_site, |p| p.ty.span());
                    quote_spanned!(span=> .arg(#ident))
                }
            });
            quote!(#access.named_key(::cachette::__private::KeyName::new() #(#steps)* .finish()))
        }
    };
    let key_of_values = quote!(#keyof_call(#(&#key_idents),*));
    let hit = quote_spanned!(Span::mixed_site()=> __cachette_hit);
    // Functions on Redis wait on it on every call that misses memory: their entry point keeps
    // the Redis lookup inline; the memory store's keeps it out of the function's future.
    let (get_or_load, get_or_load_always) = match args.store {
        Store::Memory => (
            format_ident!("get_or_load"),
            format_ident!("get_or_load_always"),
        ),
        Store::Redis | Store::Tiered => (
            format_ident!("get_or_load_shared"),
            format_ident!("get_or_load_shared_always"),
        ),
    };
    let call = match plan.mode {
        Mode::Result | Mode::Option => quote! {
            if let ::core::option::Option::Some(#hit) = #cached_fn.lookup(&#key) {
                return ::cachette::__private::Outcome::from_cached(#hit);
            }
            #cached_fn.#get_or_load(#key, move || #call_uncached).await
        },
        Mode::Always => quote! {
            if let ::core::option::Option::Some(#hit) = #cached_fn.lookup(&#key) {
                return #hit;
            }
            #cached_fn.#get_or_load_always(#key, move || #call_uncached).await
        },
    };

    // The declared signature, without `mut` and attributes on parameters (they stay on the body's fn).
    let mut outer_sig = sig.clone();
    for input in &mut outer_sig.inputs {
        if let FnArg::Typed(typed) = input {
            typed.attrs.clear();
            if let Pat::Ident(p) = &mut *typed.pat {
                p.mutability = None;
            }
        }
    }
    let mut inner_sig = sig.clone();
    inner_sig.ident = uncached.clone();

    // Companions take the key arguments; they keep the function's lifetimes only.
    let lifetimes: Vec<_> = sig.generics.lifetimes().collect();
    let key_params: Vec<TokenStream> = plan
        .params
        .iter()
        .filter(|p| p.key)
        .map(|p| {
            let (ident, ty) = (&p.ident, &p.ty);
            quote!(#ident: #ty)
        })
        .collect();
    let key_ref_params: Vec<TokenStream> = plan
        .params
        .iter()
        .filter(|p| p.key)
        .map(|p| {
            let (ident, ty) = (&p.ident, &p.ty);
            quote!(#ident: &#ty)
        })
        .collect();

    // The key companion of `#[invalidates]` and `#[cache_put]`: every parameter, `self` and
    // skipped ones included, each by reference, so that rustc checks a write path's
    // `get_user(db, id)` against this signature without moving anything.
    let receiver = sig.inputs.iter().find_map(|input| match input {
        FnArg::Receiver(r) => {
            let ty = &r.ty;
            let this = quote_spanned!(Span::mixed_site()=> __cachette_self);
            Some(quote!(#this: &#ty,))
        }
        FnArg::Typed(_) => None,
    });
    let all_params: Vec<TokenStream> = plan
        .params
        .iter()
        .map(|p| {
            let (ident, ty) = (&p.ident, &p.ty);
            quote!(#ident: &#ty)
        })
        .collect();
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;

    let owner = if plan.method {
        quote!(.owned_by(::core::any::type_name::<Self>))
    } else {
        quote!()
    };
    let name_opt = match &args.name {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let ttl = match args.ttl {
        Some(ms) => quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms))),
        None => quote!(::core::option::Option::None),
    };
    let capacity = match args.capacity {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let version = args.version;
    let store = match args.store {
        Store::Memory => quote!(::cachette::__private::StoreKind::Memory),
        Store::Redis => quote!(::cachette::__private::StoreKind::Redis),
        Store::Tiered => quote!(::cachette::__private::StoreKind::Tiered),
    };
    let l1_ttl = match args.l1_ttl {
        Some((ms, _)) => {
            quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms)))
        }
        None => quote!(::core::option::Option::None),
    };
    let key_template = match &plan.template {
        None => quote!(::core::option::Option::None),
        Some(pieces) => {
            // The literal parts, one more than the parameters: empty where two meet or at the ends.
            let mut literals = vec![String::new()];
            for piece in pieces {
                match piece {
                    Piece::Literal(text) => {
                        if let Some(last) = literals.last_mut() {
                            last.push_str(text);
                        }
                    }
                    Piece::Param(_) => literals.push(String::new()),
                }
            }
            quote!(::core::option::Option::Some(&[#(#literals),*]))
        }
    };
    let spec = quote! {
        ::cachette::__private::Spec {
            module: ::core::module_path!(),
            function: #name,
            name: #name_opt,
            version: #version,
            ttl: #ttl,
            capacity: #capacity,
            store: #store,
            key_template: #key_template,
            l1_ttl: #l1_ttl,
        }
    };
    let constructor = match args.store {
        Store::Memory => quote!(::cachette::__private::CachedFn::new(#spec)),
        Store::Redis | Store::Tiered => {
            let format = match args.format {
                Format::Json => quote!(::cachette::__private::Format::Json),
                Format::Bincode => quote!(::cachette::__private::Format::Bincode),
            };
            let codec =
                quote_spanned!(value.span()=> ::cachette::__private::Codec::<#value>::new(#format));
            quote!(::cachette::__private::CachedFn::with_codec(#spec, #codec))
        }
    };
    let body = &func.block;

    let doc_uncached = format!(
        "Runs [`{name}`](Self::{name}) itself, bypassing its cache: nothing is read or stored."
    );
    let doc_uncached = if plan.method {
        doc_uncached
    } else {
        format!("Runs [`{name}`] itself, bypassing its cache: nothing is read or stored.")
    };
    let assert_value = quote_spanned!(value.span()=> const _: () = ::cachette::__private::assert_value::<#value>(););
    let doc_invalidate = format!(
        "Drops the cached result of `{name}` for these key arguments; a load of it under way will not store its value."
    );
    let doc_clear = format!("Drops every cached result of `{name}`.");
    let doc_stats = format!("The cache counters of `{name}`.");

    quote! {
        #(#own_attrs)*
        #vis #outer_sig {
            let #cached_fn = #access;
            let #key = #key_of_values;
            #call
        }

        #[doc = #doc_uncached]
        #(#shared)*
        #[allow(dead_code)]
        #vis #inner_sig #body

        #[doc = #doc_invalidate]
        #(#shared)*
        #[allow(dead_code)]
        #vis async fn #invalidate <#(#lifetimes),*> (#(#key_params),*) {
            #access.invalidate(#key_of_values).await
        }

        #[doc = #doc_clear]
        #(#shared)*
        #[allow(dead_code)]
        #vis async fn #clear() {
            #access.clear().await
        }

        #[doc = #doc_stats]
        #(#shared)*
        #[allow(dead_code)]
        #vis fn #stats() -> ::cachette::Stats {
            #access.stats()
        }

        #[doc(hidden)]
        #(#shared)*
        #[allow(dead_code, unused_variables, clippy::too_many_arguments)]
        #vis fn #key_fn #generics (#receiver #(#all_params),*) -> ::cachette::__private::Target<#value> #where_clause {
            ::cachette::__private::Target::new(#access, #keyof_call(#(#key_idents),*))
        }

        #[doc(hidden)]
        #(#shared)*
        #[allow(dead_code)]
        #[inline]
        #vis fn #keyof <#(#lifetimes),*> (#(#key_ref_params),*) -> ::cachette::__private::CallKey {
            #key_expr
        }

        #[doc(hidden)]
        #(#shared)*
        #[allow(dead_code)]
        #vis fn #accessor() -> &'static ::cachette::__private::CachedFn<#value> {
            #assert_value
            static __CACHETTE_FN: ::cachette::__private::CachedFn<#value> = #constructor;
            &__CACHETTE_FN #owner
        }
    }
}

/// The hidden accessor of a cached function's static: `__cachette_fn_{name}` (a prefix no
/// other hidden item starts with, so no two functions' items can clash).
pub(crate) fn accessor_ident(name: &syn::Ident) -> syn::Ident {
    format_ident!("__cachette_fn_{}", name, span = name.span())
}

/// The hidden key companion that `#[invalidates]` and `#[cache_put]` call: `__cachette_key_{name}`.
pub(crate) fn key_fn_ident(name: &syn::Ident) -> syn::Ident {
    format_ident!("__cachette_key_{}", name, span = name.span())
}
