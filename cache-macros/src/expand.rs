//! The code `#[cached]` writes: the function as the user declared it, calling the cache; the
//! user's body, untouched, as `{name}_uncached`; the companions; and the hidden items behind
//! them (see [`crate::hidden`]). One generator per item, each reading the same [`Cx`].

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Attribute, FnArg, Ident, ItemFn, Pat, Type};

use crate::ast::{Function, Mode};
use crate::attr::{self, CachedArgs, Format, Store};
use crate::check;
use crate::ctxt::Errors;
use crate::hidden;
use crate::template::{self, Piece};

/// Where a `#[cached]` function is written, as far as the expansion knows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Under `#[cached]` alone: a free function, or a method (its receiver says it is one).
    Unknown,
    /// In an `impl` block, told by `#[cached_impl]` (see [`crate::impls`]).
    Impl { trait_impl: bool },
}

/// What `#[cached]` writes for one function: the function itself, and the items beside it.
pub(crate) struct Expanded {
    pub(crate) wrapper: TokenStream,
    pub(crate) siblings: TokenStream,
}

/// `#[cached(args)] item`, errors included: on error the function is emitted as written, beside
/// the errors, so one mistake does not bury the file in "cannot find function" noise.
pub(crate) fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                "#[cached] goes on an `async fn`, free or in an `impl` block",
            );
            return with_error(item, err);
        }
    };
    let Expanded { wrapper, siblings } = cached_in(args, func, Place::Unknown);
    quote!(#wrapper #siblings)
}

/// [`cached`] for a function already parsed, written in `place`.
pub(crate) fn cached_in(args: TokenStream, func: ItemFn, place: Place) -> Expanded {
    let mut errors = Errors::default();
    let args = attr::parse(args, &mut errors);
    check::asyncness(&func.sig, &args, &mut errors);
    let model = Function::from_fn(&func, &args, &mut errors);
    let template = check::cached(&func, &args, &model, &mut errors);
    match errors.finish() {
        Ok(()) => expand(&Cx::new(&func, &args, &model, template.as_deref(), place)),
        Err(err) => Expanded {
            wrapper: with_error(func.into_token_stream(), err),
            siblings: TokenStream::new(),
        },
    }
}

/// The item as written, followed by the errors.
fn with_error(item: TokenStream, err: syn::Error) -> TokenStream {
    let err = err.into_compile_error();
    quote!(#item #err)
}

/// What every generator reads: the function, its options and model, and the names they share.
struct Cx<'a> {
    func: &'a ItemFn,
    args: &'a CachedArgs,
    model: &'a Function,
    template: Option<&'a [Piece]>,
    /// Attributes that must follow every item generated from the function.
    shared: Vec<&'a Attribute>,
    /// `__cachette_fn_{f}()`, through `Self::` for a method: the function's `CachedFn`.
    access: TokenStream,
    /// `__cachette_keyof_{f}`, through `Self::` for a method.
    key_fn: TokenStream,
    /// The stored value's type as generated code names it: [`checked_value`].
    value: TokenStream,
    /// In an `impl` block: the items beside it are associated, reached through `Self::`.
    assoc: bool,
    /// The visibility of the items beside the function: the function's own, or `pub(crate)`
    /// for a trait method (whose items go to an inherent impl).
    vis: syn::Visibility,
}

impl<'a> Cx<'a> {
    fn new(
        func: &'a ItemFn,
        args: &'a CachedArgs,
        model: &'a Function,
        template: Option<&'a [Piece]>,
        place: Place,
    ) -> Self {
        let ident = &func.sig.ident;
        let accessor = hidden::cached_fn(ident);
        let key = hidden::key(ident);
        let assoc = model.method || place != Place::Unknown;
        let vis = match place {
            Place::Impl { trait_impl: true } => syn::parse_quote!(pub(crate)),
            _ => func.vis.clone(),
        };
        let (access, key_fn) = if assoc {
            (quote!(Self::#accessor()), quote!(Self::#key))
        } else {
            (quote!(#accessor()), quote!(#key))
        };
        Cx {
            func,
            args,
            model,
            template,
            shared: func.attrs.iter().filter(|a| is_shared(a)).collect(),
            access,
            key_fn,
            value: checked_value(model, args),
            assoc,
            vis,
        }
    }

    /// The function's name, `f`.
    fn ident(&self) -> &'a Ident {
        &self.func.sig.ident
    }

    /// `{f}_uncached`: the name the user's body runs under.
    fn uncached(&self) -> Ident {
        format_ident!("{}_uncached", self.ident())
    }

    /// `key: Type` (or `key: &Type` when `by_ref`) for each key parameter.
    fn key_params(&self, by_ref: bool) -> Vec<TokenStream> {
        let and = by_ref.then(|| quote!(&));
        self.model
            .key_params()
            .map(|p| {
                let (ident, ty) = (&p.ident, &p.ty);
                quote!(#ident: #and #ty)
            })
            .collect()
    }

    /// The key of the call made with the key parameters in scope.
    fn key_of_params(&self) -> TokenStream {
        let key_fn = &self.key_fn;
        let idents = self.model.key_params().map(|p| &p.ident);
        quote!(#key_fn(#(&#idents),*))
    }
}

/// The value type, as `Checked<V, { <V as Marker>::OK + … }>`: `V` when it has what the cache
/// needs (`Clone`, `Send + Sync`, and serde for a store that keeps bytes). When it lacks one,
/// rustc reports that once, at the user's `V`, with the marker's message, and every item naming
/// the checked type (the static, the `CachedFn` calls, the write targets) sees an error already
/// reported instead of a second error of its own.
fn checked_value(model: &Function, args: &CachedArgs) -> TokenStream {
    let value = &model.value;
    let mut markers = vec![quote!(ValueClone), quote!(ValueSend)];
    if args.store != Store::Memory {
        markers.push(quote!(ValueSerde));
    }
    let mut oks: Vec<TokenStream> = markers
        .iter()
        .map(|marker| quote!(<#value as ::cachette::__private::#marker>::OK))
        .collect();
    // The Cargo features the options need, checked at the options (see the runtime's `feature`).
    let feature = |span: Option<Span>, marker: TokenStream| {
        let span = span.unwrap_or_else(Span::call_site);
        quote_spanned!(span=> <::cachette::__private::Features as ::cachette::__private::#marker>::OK)
    };
    if args.store != Store::Memory {
        oks.push(feature(args.store_span, quote!(RedisFeature)));
        if args.format == Format::Bincode {
            oks.push(feature(args.format_span, quote!(BincodeFeature)));
        }
    }
    quote!(::cachette::__private::Checked<#value, { #(#oks)+* }>)
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

/// Every item `#[cached]` writes, in order.
fn expand(cx: &Cx<'_>) -> Expanded {
    let wrapper = wrapper(cx);
    let uncached = uncached(cx);
    let companions = companions(cx);
    let target = target(cx);
    let target_trait = target_trait(cx);
    let key = key_fn(cx);
    let cached_fn = cached_fn(cx);
    Expanded {
        wrapper,
        siblings: quote! {
            #uncached
            #companions
            #target
            #target_trait
            #key
            #cached_fn
        },
    }
}

/// The function as declared, its body replaced by the cache-aside call: look up, and on a
/// miss run `{f}_uncached` once per key.
fn wrapper(cx: &Cx<'_>) -> TokenStream {
    let own_attrs = &cx.func.attrs;
    let vis = &cx.func.vis;
    let access = &cx.access;
    let uncached = cx.uncached();
    // Locals of generated code: mixed-site, so they can never meet the user's names.
    let cached_fn = quote_spanned!(Span::mixed_site()=> __cachette_fn);
    let key = quote_spanned!(Span::mixed_site()=> __cachette_key);
    let hit = quote_spanned!(Span::mixed_site()=> __cachette_hit);
    let key_of_params = cx.key_of_params();

    let names = cx.model.params.iter().map(|p| &p.ident);
    let call_uncached = if cx.model.method {
        quote!(Self::#uncached(self, #(#names),*))
    } else if cx.assoc {
        quote!(Self::#uncached(#(#names),*))
    } else {
        quote!(#uncached(#(#names),*))
    };
    // Functions on Redis wait on it on every call that misses memory: their entry point keeps
    // the Redis lookup inline; the memory store's keeps it out of the function's future.
    let (get_or_load, get_or_load_always) = match cx.args.store {
        Store::Memory => (
            format_ident!("get_or_load"),
            format_ident!("get_or_load_always"),
        ),
        Store::Redis | Store::Tiered => (
            format_ident!("get_or_load_shared"),
            format_ident!("get_or_load_shared_always"),
        ),
    };
    let sync = cx.func.sig.asyncness.is_none();
    let call = match cx.model.mode {
        // A sync function: the memory store's blocking miss path (`check` saw to the store).
        Mode::Result | Mode::Option if sync => quote! {
            if let ::core::option::Option::Some(#hit) = #cached_fn.lookup(&#key) {
                return ::cachette::__private::Outcome::from_cached(#hit);
            }
            #cached_fn.get_or_load_blocking(#key, move || #call_uncached)
        },
        Mode::Always if sync => quote! {
            if let ::core::option::Option::Some(#hit) = #cached_fn.lookup(&#key) {
                return #hit;
            }
            #cached_fn.get_or_load_blocking_always(#key, move || #call_uncached)
        },
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
    let mut sig = cx.func.sig.clone();
    for input in &mut sig.inputs {
        if let FnArg::Typed(typed) = input {
            typed.attrs.clear();
            if let Pat::Ident(p) = &mut *typed.pat {
                p.mutability = None;
            }
        }
    }
    // The body's braces carry the user's: the item then spans the user's tokens only, so
    // rustc's reports about the function itself (`missing_docs`) point at its signature.
    let mut body = Group::new(
        Delimiter::Brace,
        quote! {
            let #cached_fn = #access;
            let #key = #key_of_params;
            #call
        },
    );
    body.set_span(cx.func.block.brace_token.span.join());
    quote! {
        #(#own_attrs)*
        #vis #sig #body
    }
}

/// `{f}_uncached`: the user's function, body and spans untouched, under another name.
fn uncached(cx: &Cx<'_>) -> TokenStream {
    let shared = &cx.shared;
    let vis = &cx.vis;
    let name = cx.ident().to_string();
    let mut sig = cx.func.sig.clone();
    sig.ident = cx.uncached();
    let body = &cx.func.block;
    let doc = if cx.assoc {
        format!(
            "Runs [`{name}`](Self::{name}) itself, bypassing its cache: nothing is read or stored."
        )
    } else {
        format!("Runs [`{name}`] itself, bypassing its cache: nothing is read or stored.")
    };
    quote! {
        #[doc = #doc]
        #(#shared)*
        #[allow(dead_code)]
        #vis #sig #body
    }
}

/// The public companions: `{f}_invalidate(key args)`, `{f}_clear()`, `{f}_stats()`.
fn companions(cx: &Cx<'_>) -> TokenStream {
    let shared = &cx.shared;
    let vis = &cx.vis;
    let access = &cx.access;
    let ident = cx.ident();
    let name = ident.to_string();
    let invalidate = format_ident!("{}_invalidate", ident);
    let clear = format_ident!("{}_clear", ident);
    let stats = format_ident!("{}_stats", ident);
    // They take the key arguments and keep the function's lifetimes only.
    let lifetimes = cx.func.sig.generics.lifetimes();
    let key_params = cx.key_params(false);
    let key_of_params = cx.key_of_params();
    let doc_invalidate = format!(
        "Drops the cached result of `{name}` for these key arguments; a load of it under way will not store its value."
    );
    let doc_clear = format!("Drops every cached result of `{name}`.");
    let doc_stats = format!("The cache counters of `{name}`.");
    // A sync function's companions are sync too: its callers may have no runtime.
    let (asyncness, invalidate_body, clear_body) = if cx.func.sig.asyncness.is_some() {
        (
            quote!(async),
            quote!(#access.invalidate(#key_of_params).await),
            quote!(#access.clear().await),
        )
    } else {
        (
            quote!(),
            quote!(#access.invalidate_blocking(#key_of_params)),
            quote!(#access.clear_blocking()),
        )
    };
    quote! {
        #[doc = #doc_invalidate]
        #(#shared)*
        #[allow(dead_code)]
        #vis #asyncness fn #invalidate <#(#lifetimes),*> (#(#key_params),*) {
            #invalidate_body
        }

        #[doc = #doc_clear]
        #(#shared)*
        #[allow(dead_code)]
        #vis #asyncness fn #clear() {
            #clear_body
        }

        #[doc = #doc_stats]
        #(#shared)*
        #[allow(dead_code)]
        #vis fn #stats() -> ::cachette::Stats {
            #access.stats()
        }
    }
}

/// Every parameter, `self` and skipped ones included, each by reference: the signature a write
/// path's `f(args…)` is checked against, without moving anything.
fn all_params_by_ref(cx: &Cx<'_>) -> (Option<TokenStream>, Vec<TokenStream>) {
    let receiver = cx.func.sig.inputs.iter().find_map(|input| match input {
        FnArg::Receiver(r) => {
            let ty = &r.ty;
            let this = quote_spanned!(Span::mixed_site()=> __cachette_self);
            Some(quote!(#this: &#ty,))
        }
        FnArg::Typed(_) => None,
    });
    let params = cx
        .model
        .params
        .iter()
        .map(|p| {
            let (ident, ty) = (&p.ident, &p.ty);
            quote!(#ident: &#ty)
        })
        .collect();
    (receiver, params)
}

/// `__cachette_target_{f}(&every arg…)`: the entry of one call, for `#[invalidates]` and
/// `#[cache_put]`.
fn target(cx: &Cx<'_>) -> TokenStream {
    let shared = &cx.shared;
    let vis = &cx.vis;
    let value = &cx.value;
    let access = &cx.access;
    let key_fn = &cx.key_fn;
    let target = hidden::target(cx.ident());
    let generics = &cx.func.sig.generics;
    let where_clause = &generics.where_clause;
    let (receiver, params) = all_params_by_ref(cx);
    let key_idents = cx.model.key_params().map(|p| &p.ident);
    quote! {
        #[doc(hidden)]
        #(#shared)*
        #[allow(dead_code, unused_variables, clippy::too_many_arguments)]
        #vis fn #target #generics (#receiver #(#params),*) -> ::cachette::__private::Target<#value> #where_clause {
            ::cachette::__private::Target::new(#access, #key_fn(#(#key_idents),*))
        }
    }
}

/// For a free function, the trait `__cachette_targetof_{f}`, implemented for every type, whose
/// one method `f.__cachette_target_{f}(&args…)` is the target: a write path names the
/// function itself first, so a misspelled name is rustc's "cannot find value" on the user's
/// token, and the method, never looked up on a value that does not exist, adds no second
/// error. For a generic function the method ties the function's generics to its arguments'
/// (`Self: FnOnce(…)`), so they are inferred as in a call.
fn target_trait(cx: &Cx<'_>) -> TokenStream {
    if cx.assoc {
        return TokenStream::new();
    }
    let shared = &cx.shared;
    let vis = &cx.vis;
    let value = &cx.value;
    let ident = cx.ident();
    let target = hidden::target(ident);
    let trait_ident = hidden::target_trait(ident);

    // `impl Trait` parameters become named generics, so the tie can name them.
    let mut generics = cx.func.sig.generics.clone();
    let mut types: Vec<Type> = cx.model.params.iter().map(|p| p.ty.clone()).collect();
    let mut named = NameImplTraits::default();
    for ty in &mut types {
        named.visit_type_mut(ty);
    }
    let generic = named.added > 0
        || generics.type_params().next().is_some()
        || generics.const_params().next().is_some();
    generics.params.extend(named.params);
    if generic {
        // Elided lifetimes get names, so the tie can repeat the types; the parameters' own
        // types then imply the bounds the tie's types need.
        let mut named = NameElidedLifetimes::default();
        for ty in &mut types {
            named.visit_type_mut(ty);
        }
        for (i, lifetime) in named.params.into_iter().enumerate() {
            generics.params.insert(i, lifetime);
        }
        let ret = format_ident!("__CachetteRet", span = Span::mixed_site());
        generics.params.push(syn::parse_quote!(#ret));
        generics
            .make_where_clause()
            .predicates
            .push(syn::parse_quote!(Self: ::core::ops::FnOnce(#(#types),*) -> #ret));
    }
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let params = cx.model.params.iter().zip(&types).map(|(p, ty)| {
        let ident = &p.ident;
        quote!(#ident: &#ty)
    });
    let names = cx.model.params.iter().map(|p| &p.ident);
    let this = quote_spanned!(Span::mixed_site()=> __CachetteT);
    quote! {
        #[doc(hidden)]
        #(#shared)*
        #[allow(non_camel_case_types)]
        #vis trait #trait_ident {
            #[allow(clippy::too_many_arguments)]
            fn #target #impl_generics (&self, #(#params),*) -> ::cachette::__private::Target<#value> #where_clause {
                #target(#(#names),*)
            }
        }

        #(#shared)*
        impl<#this: ?::core::marker::Sized> #trait_ident for #this {}
    }
}

/// Replaces each `impl Trait` with a new generic parameter bounded by `Trait`.
#[derive(Default)]
struct NameImplTraits {
    added: usize,
    params: Vec<syn::GenericParam>,
}

impl VisitMut for NameImplTraits {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(it) = ty {
            let name = format_ident!("__CachetteImpl{}", self.added, span = Span::mixed_site());
            let bounds = &it.bounds;
            self.params.push(syn::parse_quote!(#name: #bounds));
            self.added += 1;
            *ty = syn::parse_quote!(#name);
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// Gives each elided lifetime (`&T`, `'_`) a new name, declared as a generic parameter.
#[derive(Default)]
struct NameElidedLifetimes {
    params: Vec<syn::GenericParam>,
}

impl NameElidedLifetimes {
    fn fresh(&mut self) -> syn::Lifetime {
        let name = format!("'__cachette_l{}", self.params.len());
        let lifetime = syn::Lifetime::new(&name, Span::mixed_site());
        self.params.push(syn::parse_quote!(#lifetime));
        lifetime
    }
}

impl VisitMut for NameElidedLifetimes {
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(self.fresh());
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }

    fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
        if l.ident == "_" {
            *l = self.fresh();
        }
    }
}

/// `__cachette_keyof_{f}(&key args…)`: the one place a key is computed. Each argument goes in
/// through `KeyArg`, named with its type's tokens, so a missing `Serialize` is one error at
/// that parameter's type.
fn key_fn(cx: &Cx<'_>) -> TokenStream {
    let shared = &cx.shared;
    let vis = &cx.vis;
    let access = &cx.access;
    let key = hidden::key(cx.ident());
    let lifetimes = cx.func.sig.generics.lifetimes();
    let key_params = cx.key_params(true);
    let body = match cx.template {
        None => {
            let builder = quote_spanned!(Span::mixed_site()=> __cachette_builder);
            let steps = cx.model.key_params().map(|p| {
                let (ident, ty) = (&p.ident, &p.ty);
                quote_spanned!(ty.span()=> <#ty as ::cachette::__private::KeyArg>::key_arg(#ident, &mut #builder);)
            });
            quote!({
                let mut #builder = ::cachette::__private::KeyBuilder::new();
                #(#steps)*
                #access.digest_key(#builder.finish())
            })
        }
        Some(pieces) => {
            let name = quote_spanned!(Span::mixed_site()=> __cachette_name);
            let steps = pieces.iter().filter_map(|piece| match piece {
                Piece::Literal(text) => Some(quote!(let #name = #name.lit(#text);)),
                // `check` made sure each `{name}` is a key parameter.
                Piece::Param(param) => cx.model.params.iter().find(|p| p.ident == param.as_str()).map(|p| {
                    let (ident, ty) = (&p.ident, &p.ty);
                    quote_spanned!(ty.span()=> let #name = <#ty as ::cachette::__private::KeyArg>::name_arg(#ident, #name);)
                }),
            });
            quote!({
                let #name = ::cachette::__private::KeyName::new();
                #(#steps)*
                #access.named_key(#name.finish())
            })
        }
    };
    quote! {
        #[doc(hidden)]
        #(#shared)*
        #[allow(dead_code)]
        #[inline]
        #vis fn #key <#(#lifetimes),*> (#(#key_params),*) -> ::cachette::__private::CallKey {
            #body
        }
    }
}

/// `__cachette_fn_{f}()`: the static `CachedFn` (namespace, ttl, store, codec) behind the rest.
fn cached_fn(cx: &Cx<'_>) -> TokenStream {
    let shared = &cx.shared;
    let vis = &cx.vis;
    let value = &cx.value;
    let accessor = hidden::cached_fn(cx.ident());
    let owner = if cx.assoc {
        quote!(.owned_by(::core::any::type_name::<Self>))
    } else {
        quote!()
    };
    let constructor = constructor(cx);
    quote! {
        #[doc(hidden)]
        #(#shared)*
        #[allow(dead_code)]
        #vis fn #accessor() -> &'static ::cachette::__private::CachedFn<#value> {
            static __CACHETTE_FN: ::cachette::__private::CachedFn<#value> = #constructor;
            &__CACHETTE_FN #owner
        }
    }
}

/// The `CachedFn` constructor: the options as a `Spec`, and a codec for stores that keep bytes.
fn constructor(cx: &Cx<'_>) -> TokenStream {
    let args = cx.args;
    let name = cx.ident().to_string();
    let some_or_none = |value: Option<TokenStream>| match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    };
    let millis = |ms: u64| quote!(::core::time::Duration::from_millis(#ms));
    let name_opt = some_or_none(args.name.as_ref().map(ToTokens::to_token_stream));
    let ttl = some_or_none(args.ttl.map(millis));
    let capacity = some_or_none(args.capacity.map(|n| quote!(#n)));
    let l1_ttl = some_or_none(args.l1_ttl.map(|(ms, _)| millis(ms)));
    let key_template = some_or_none(cx.template.map(|pieces| {
        let literals = template::literals(pieces);
        quote!(&[#(#literals),*])
    }));
    let version = args.version;
    let store = match args.store {
        Store::Memory => quote!(::cachette::__private::StoreKind::Memory),
        Store::Redis => quote!(::cachette::__private::StoreKind::Redis),
        Store::Tiered => quote!(::cachette::__private::StoreKind::Tiered),
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
    // Each named function is passed where a `fn` pointer of the value's type is expected,
    // with the user's tokens: a wrong signature is rustc's type error at the user's path.
    let ttl_from = args
        .ttl_from
        .as_ref()
        .map(|path| quote_spanned!(path.span()=> .ttl_from(#path)));
    let unless = args
        .unless
        .as_ref()
        .map(|path| quote_spanned!(path.span()=> .unless(#path)));
    let base = match args.store {
        Store::Memory => quote!(::cachette::__private::CachedFn::new(#spec)),
        Store::Redis | Store::Tiered => {
            let value = &cx.value;
            let format = match args.format {
                Format::Json => quote!(::cachette::__private::Format::Json),
                Format::Bincode => quote!(::cachette::__private::Format::Bincode),
            };
            let codec = quote!(::cachette::__private::Codec::<#value>::new(#format));
            quote!(::cachette::__private::CachedFn::with_codec(#spec, #codec))
        }
    };
    quote!(#base #ttl_from #unless)
}
