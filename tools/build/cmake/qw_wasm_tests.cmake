# qw_wasm_tests.cmake - wasm builds of the kernel test, runnable in Node and in browsers
# (tools/bench/pages/kernels.html?prog=wasm/test_kernels-mt&args=bench,2 through tools/serve/serve.mjs):
#   node build/wasm/test_kernels-st.mjs            (SIMD128, one thread)
#   node build/wasm/test_kernels-mt.mjs            (SIMD128 + pthreads)
#   node build/wasm/test_kernels-st.mjs bench 2    (one JSON line of GB/s; the number is pool threads)
# With -DQWASM_RELAXED_SIMD=ON (clang-16 under emcc, see the wasm performance note) the targets are
# test_kernels-{st,mt}-relaxed and Node 20 needs `node --experimental-wasm-relaxed-simd`.
# emscripten 3.1.6's ES-module output does not run under Node (it uses __dirname/require), so the test
# is built as a classic .js and a two-line .mjs wrapper loads it (and hides Node 20's global fetch,
# which 3.1.6 mistakes for a browser's). The cores (qwasm_core_st/_mt) are defined later in
# CMakeLists.txt; target names resolve at generate time.
if(EMSCRIPTEN)
  set(_qw_sfx "")
  if(QWASM_RELAXED_SIMD)
    set(_qw_sfx "-relaxed")
  endif()
  foreach(_fl st mt)
    set(_t test_kernels-${_fl}${_qw_sfx})
    add_executable(${_t} "${CMAKE_SOURCE_DIR}/tests/test_kernels.c")
    target_link_libraries(${_t} PRIVATE qwasm_core_${_fl})
    # gnu11: EM_ASM in the test's main; the relaxed build compiles the test like the kernels.
    set_target_properties(${_t} PROPERTIES SUFFIX ".js" C_EXTENSIONS ON)
    if(QWASM_RELAXED_SIMD)
      target_compile_options(${_t} PRIVATE -mrelaxed-simd)
    endif()
    # TOTAL_STACK: emscripten 3.1.6 does not know STACK_SIZE yet.
    set(_lk -sENVIRONMENT=node,web,worker -sALLOW_MEMORY_GROWTH=1 -sMAXIMUM_MEMORY=4GB -sINITIAL_MEMORY=64MB
            -sTOTAL_STACK=1MB -sEXIT_RUNTIME=1)
    if(_fl STREQUAL "mt")
      # 4 workers: the tests use pools of up to 4 threads; created at startup, so pthread_create never waits.
      list(APPEND _lk -pthread -sPTHREAD_POOL_SIZE=4)
    endif()
    target_link_options(${_t} PRIVATE ${_lk} ${QW_RELAXED_LINK})
    file(WRITE "${CMAKE_BINARY_DIR}/${_t}.mjs"
      "// Runs ${_t}.js under Node (see tools/build/cmake/qw_wasm_tests.cmake).\n"
      "import { createRequire } from 'module';\n"
      "globalThis.fetch = undefined;\n"
      "createRequire(import.meta.url)('./${_t}.js');\n")
  endforeach()
endif()
