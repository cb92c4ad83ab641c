//! The `#[source]`, `#[operator]` and `#[sink]` attributes of weir-sdk, and the function
//! plugins `#[filter]`, `#[map]` and `#[flat_map]`.
//!
//! Each of the first three goes on an `impl Source|Operator|Sink for T` block and adds, beside
//! it, the WebAssembly
//! component exports for the matching `packed-*` world of `wit/v0.3` (a batch crosses the
//! boundary as one buffer; the config comes as one JSON document). Invariant: a plugin crate
//! gets the exports of exactly one world, so the host can tell its kind from the component
//! alone.

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemFn, ItemImpl, parse_macro_input, spanned::Spanned};

/// The WIT contract, embedded so plugin crates need no path to it: `weir:plugin@0.3.0` (event
/// time, keyed state, config as one document) for every kind.
const WIT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../wit/v0.3/weir.wit"
));

/// Export this `impl Source for T` block as a weir source plugin.
#[proc_macro_attribute]
pub fn source(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(
        attr,
        item,
        "Source",
        "packed-source-plugin",
        "__glue_source",
        WIT,
    )
}

/// Export this `impl Operator for T` block as a weir operator plugin.
#[proc_macro_attribute]
pub fn operator(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(
        attr,
        item,
        "Operator",
        "packed-operator-plugin",
        "__glue_operator",
        WIT,
    )
}

/// Export this `impl Sink for T` block as a weir sink plugin.
#[proc_macro_attribute]
pub fn sink(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, "Sink", "packed-sink-plugin", "__glue_sink", WIT)
}

fn expand(
    attr: TokenStream,
    item: TokenStream,
    want: &str,
    world: &str,
    glue: &str,
    wit: &str,
) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "this attribute takes no arguments")
            .to_compile_error()
            .into();
    }
    let block = parse_macro_input!(item as ItemImpl);
    let names_trait = block
        .trait_
        .as_ref()
        .and_then(|(_, path, _)| path.segments.last())
        .is_some_and(|seg| seg.ident == want);
    if !names_trait {
        let msg = format!(
            "#[{}] goes on an `impl {want} for YourType` block",
            want.to_lowercase()
        );
        return syn::Error::new(block.span(), msg).to_compile_error().into();
    }
    let self_ty = &block.self_ty;
    let exports = exports(quote!(#self_ty), world, glue, wit);
    quote! {
        #block
        #exports
    }
    .into()
}

/// The component exports of `world` for plugin type `self_ty`, by the SDK's `glue` macro.
fn exports(
    self_ty: proc_macro2::TokenStream,
    world: &str,
    glue: &str,
    wit: &str,
) -> proc_macro2::TokenStream {
    let glue = syn::Ident::new(glue, proc_macro2::Span::call_site());
    quote! {
        #[doc(hidden)]
        #[allow(unused_imports, dead_code, unsafe_code, clippy::all)]
        mod __weir_exports {
            use super::*;
            ::weir_sdk::__private::wit_bindgen::generate!({
                inline: #wit,
                world: #world,
                runtime_path: "::weir_sdk::__private::wit_bindgen::rt",
            });
            ::weir_sdk::#glue!(#self_ty);
        }
    }
}

/// Export `fn keep(r: &RecordRef) -> bool` (or `-> Result<bool>`) as a stateless operator
/// plugin that passes on the records it keeps, unchanged.
#[proc_macro_attribute]
pub fn filter(attr: TokenStream, item: TokenStream) -> TokenStream {
    function(attr, item, "filter", 1)
}

/// Export `fn f(r: &RecordRef, value: &mut ValueWriter)` (or `-> Result<()>`) as a stateless
/// operator plugin: every record goes on with the value `f` writes; its key, timestamp and
/// headers stay.
#[proc_macro_attribute]
pub fn map(attr: TokenStream, item: TokenStream) -> TokenStream {
    function(attr, item, "map", 2)
}

/// Export `fn f(r: &RecordRef, out: &mut BatchBuilder)` (or `-> Result<()>`) as a stateless
/// operator plugin: `f` writes any number of records for each one.
#[proc_macro_attribute]
pub fn flat_map(attr: TokenStream, item: TokenStream) -> TokenStream {
    function(attr, item, "flat_map", 2)
}

/// A function plugin: the function as written, a stateless operator type that runs it on every
/// record of a batch (the SDK's `__private::<kind>`), and that type's exports.
fn function(attr: TokenStream, item: TokenStream, kind: &str, args: usize) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "this attribute takes no arguments")
            .to_compile_error()
            .into();
    }
    let f = parse_macro_input!(item as ItemFn);
    if f.sig.inputs.len() != args {
        let want = match kind {
            "filter" => "`fn keep(r: &RecordRef) -> bool`",
            "map" => "`fn f(r: &RecordRef, value: &mut ValueWriter)`",
            _ => "`fn f(r: &RecordRef, out: &mut BatchBuilder)`",
        };
        let msg = format!("#[{kind}] goes on a function like {want}");
        return syn::Error::new(f.sig.span(), msg).to_compile_error().into();
    }
    let name = &f.sig.ident;
    let run = syn::Ident::new(kind, proc_macro2::Span::call_site());
    let exports = exports(
        quote!(__WeirFunction),
        "packed-operator-plugin",
        "__glue_operator",
        WIT,
    );
    quote! {
        #f

        /// The function plugin's operator: no state, no config.
        #[doc(hidden)]
        struct __WeirFunction;

        impl ::weir_sdk::__private::serde::Serialize for __WeirFunction {
            fn serialize<S: ::weir_sdk::__private::serde::Serializer>(
                &self,
                s: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                s.serialize_unit()
            }
        }

        impl<'de> ::weir_sdk::__private::serde::Deserialize<'de> for __WeirFunction {
            fn deserialize<D: ::weir_sdk::__private::serde::Deserializer<'de>>(
                d: D,
            ) -> ::core::result::Result<Self, D::Error> {
                <() as ::weir_sdk::__private::serde::Deserialize>::deserialize(d)
                    .map(|()| __WeirFunction)
            }
        }

        impl ::weir_sdk::Operator for __WeirFunction {
            fn open(
                config: &::weir_sdk::Config,
                _ctx: &::weir_sdk::Context,
            ) -> ::weir_sdk::Result<Self> {
                config.only(&[])?;
                Ok(__WeirFunction)
            }

            fn process_batch(
                &mut self,
                batch: &::weir_sdk::Batch,
                out: &mut ::weir_sdk::BatchBuilder,
            ) -> ::weir_sdk::Result<()> {
                ::weir_sdk::__private::#run(batch, out, #name)
            }
        }

        #exports
    }
    .into()
}
