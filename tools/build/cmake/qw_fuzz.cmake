# qw_fuzz.cmake - libFuzzer targets tests/fuzz_*.c, only with -DQWASM_FUZZ=ON and clang (tools/test/fuzz.sh).
# Everything in the build is instrumented for coverage and ASan/UBSan; the fuzzers link libFuzzer's main.
if(QWASM_FUZZ AND QW_PLATFORM STREQUAL "native")
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(WARNING "QWASM_FUZZ needs clang (CC=clang); the fuzz targets are not built")
  else()
    add_compile_options(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
                        -fno-sanitize-recover=undefined)
    add_link_options(-fsanitize=address,undefined)
    add_compile_definitions(QW_JINJA_MAX_STEPS=500000L) # a chat template's render ends well within -timeout
    file(GLOB QW_FUZZ_SRC CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/tests/fuzz_*.c")
    foreach(f ${QW_FUZZ_SRC})
      get_filename_component(fn ${f} NAME_WE)
      add_executable(${fn} ${f})
      # qwasm_core is defined after the tools/build/cmake parts are included; names resolve at generate time
      target_link_libraries(${fn} PRIVATE qwasm_core)
      target_link_options(${fn} PRIVATE -fsanitize=fuzzer)
      target_compile_definitions(${fn} PRIVATE QW_FUZZ_SOURCE_DIR="${CMAKE_SOURCE_DIR}") # seed files read at start
    endforeach()
  endif()
endif()
