//! The fixed names of a bundle's layout (spec/FORMAT.md section 1), defined once: the
//! entries a bundle has or may have, the prefixes of the others, and the bundle's file name
//! suffix. The writer, the reader, the manifest and both tools name them through these.

/// The suffix of a bundle's file name, `NAME-VERSION.pyapp`.
pub const BUNDLE_SUFFIX: &str = ".pyapp";
/// Name of the manifest entry, always the first entry of a bundle (section 1.1).
pub const MANIFEST_NAME: &str = "manifest.json";
/// Name of the optional minisign signature of the manifest, the second entry when present;
/// not listed in the manifest (section 1.2).
pub const SIGNATURE_NAME: &str = "manifest.json.minisig";
/// Name of the app's metadata entry (section 3); the project's template has the same name.
pub const METADATA_NAME: &str = "metadata.yaml";
/// Name of the configuration spec entry (section 4); the project's file has the same name.
pub const CONFIGURATION_NAME: &str = "configuration.yaml";
/// Prefix of the wheels, `deps/<wheel>`: one file directly under it per wheel, stored.
pub const DEPS_PREFIX: &str = "deps/";
/// Prefix of the app's source tree, `src/<path>`: the only entries that may be executable.
pub const SRC_PREFIX: &str = "src/";
