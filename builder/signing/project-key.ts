/**
 * The project's minisign public key: what releases are signed with (`simplex-pi verify`, ci/releasing.md) and what an
 * image trusts for relay updates unless its recipe names another (`update.public_key: project`, the default).
 *
 * null until the first signed release: the key is made then (`simplex-pi keygen`), published in README.md
 * ("Verify a download") and entered here as the same base64 line (`RW…`), in the same commit. Until then an image
 * built with the default carries no update key, and `simplex-pi update` on it refuses every bundle, saying so:
 * trusting a key nobody published would be worse.
 */
export const PROJECT_PUBLIC_KEY: string | null = null;
