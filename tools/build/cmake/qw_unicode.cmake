# qw_unicode.cmake - generates the Unicode tables of the tokenizer (classes, case folding, NFC) from the
# Unicode Character Database at build time (tools/build/gen_unicode_tables.py); nothing is committed.
set(QW_UCD_DIR "/usr/share/unicode" CACHE PATH "Unicode Character Database (Debian: unicode-data)")
if(NOT EXISTS "${QW_UCD_DIR}/UnicodeData.txt")
  message(FATAL_ERROR "qw_unicode.cmake: ${QW_UCD_DIR}/UnicodeData.txt not found; install Debian's unicode-data or set QW_UCD_DIR")
endif()
find_program(QW_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT QW_PYTHON3)
  find_program(QW_PYTHON3 NAMES python3)
endif()
if(NOT QW_PYTHON3)
  message(FATAL_ERROR "qw_unicode.cmake: python3 is needed to generate the Unicode tables")
endif()
file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/generated")
set(QW_UNICODE_TABLES_C "${CMAKE_BINARY_DIR}/generated/qw_unicode_tables.c")
set(QW_UNICODE_TABLES_H "${CMAKE_BINARY_DIR}/generated/qw_unicode_tables.h")
add_custom_command(
  OUTPUT "${QW_UNICODE_TABLES_C}" "${QW_UNICODE_TABLES_H}"
  COMMAND "${QW_PYTHON3}" "${CMAKE_SOURCE_DIR}/tools/build/gen_unicode_tables.py" "${QW_UCD_DIR}"
          "${QW_UNICODE_TABLES_C}" "${QW_UNICODE_TABLES_H}"
  DEPENDS "${CMAKE_SOURCE_DIR}/tools/build/gen_unicode_tables.py" "${QW_UCD_DIR}/UnicodeData.txt"
          "${QW_UCD_DIR}/PropList.txt" "${QW_UCD_DIR}/CaseFolding.txt"
          "${QW_UCD_DIR}/DerivedNormalizationProps.txt" "${QW_UCD_DIR}/CompositionExclusions.txt"
  COMMENT "Generating Unicode tables from ${QW_UCD_DIR}"
  VERBATIM)
list(APPEND QW_GENERATED_SRC "${QW_UNICODE_TABLES_C}" "${QW_UNICODE_TABLES_H}")
