//! The `#[source]`, `#[operator]` and `#[sink]` attributes of weir-sdk.
//!
//! Each goes on an `impl Source|Operator|Sink for T` block and adds, beside it, the WebAssembly
//! component exports for the matching `packed-*` world (a batch crosses the boundary as one
//! buffer): of `wit/v0.2` for sources and operators (event time), of `wit/weir.wit` (0.1.0)
//! for sinks. Invariant: a plugin crate gets the exports of exactly one world, so
//! the host can tell its kind from the component alone.

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemImpl, parse_macro_input, spanned::Spanned};

/// The WIT contracts, embedded so plugin crates need no path to them: 0.1.0 for sinks, 0.2.0
/// (event time: timers, watermarks, finish, late output) for operators and sources.
const WIT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit/weir.wit"));
const WIT_V2: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../wit/v0.2/weir.wit"
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
        WIT_V2,
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
        WIT_V2,
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
    let glue = syn::Ident::new(glue, proc_macro2::Span::call_site());
    quote! {
        #block

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
    .into()
}
