// eslint.config.js - lint of js/ (the runtime's browser/Node glue): eslint's recommended rules, for ES modules that run
// on a page, in a worker and in Node; and of tests/ and tools/. Run by tests/node/lint.test.mjs (npx eslint js/ tests/ tools/).
import js from '@eslint/js';
import globals from 'globals';

export default [
  js.configs.recommended,
  {
    files: ['js/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.browser, ...globals.worker, ...globals.node, FileReaderSync: 'readonly' },
    },
    rules: {
      // unused parameters document a callback's signature; pairs of entries() are destructured whole
      'no-unused-vars': ['error', { args: 'none', caughtErrors: 'none', destructuredArrayIgnorePattern: '^' }],
      // variables given a value before a try (read in its finally or after a catch) are the code's pattern
      'no-useless-assignment': 'off',
    },
  },
  {
    // tests and tools: Node scripts whose functions passed to page.evaluate run in a page; a clean-up that may
    // fail (a process already gone, a file already removed) is an empty catch
    files: ['tests/**/*.mjs', 'tools/**/*.mjs', 'tests/**/*.js', 'tools/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.node, ...globals.browser, ...globals.worker },
    },
    rules: {
      'no-unused-vars': ['error', { args: 'none', caughtErrors: 'none', destructuredArrayIgnorePattern: '^', varsIgnorePattern: '^_$' }],
      'no-useless-assignment': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    // an emscripten --js-library: a script run through emscripten's preprocessor, with its globals
    files: ['js/worker/qw_library.js'],
    languageOptions: {
      sourceType: 'script',
      globals: { mergeInto: 'readonly', LibraryManager: 'readonly', UTF8ToString: 'readonly', wasmMemory: 'readonly',
                 Module: 'readonly' },
    },
  },
];
