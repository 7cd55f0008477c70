# LayerProbe.cmake — one layering check, run by ctest (see test/layering/CMakeLists.txt):
#   cmake -DCC=<compiler> -DLAYER_ROOT=<incroot/layer> -DTOP=<source dir> -DEXTRA=<dir>[:<dir>...]
#         -DSRC=<probe.c> -DEXPECT=sees|blind -P LayerProbe.cmake
# EXTRA: third-party include dirs (ei, OpenSSL), colon-separated.
# The probe is preprocessed twice. With every root (as tests see the tree) it must succeed, so each header it
# names exists. With the layer's own include root it must succeed (sees) or fail because a header is not
# found (blind) — a failure for any other reason fails the check, so the check cannot pass by accident.
string(REPLACE ":" ";" EXTRA "${EXTRA}")
set(all_flags -I${TOP}/c_src -I${TOP}/include)
set(layer_flags "")
foreach(d ${EXTRA})
  list(APPEND all_flags -I${d})
  list(APPEND layer_flags -I${d})
endforeach()
set(base ${CC} -std=c11 -D_GNU_SOURCE -D_REENTRANT -E -o /dev/null)

execute_process(COMMAND ${base} ${all_flags} ${SRC} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SRC} does not even preprocess with every include root (a header was renamed?):\n${err}")
endif()

execute_process(COMMAND ${base} -I${LAYER_ROOT} ${layer_flags} ${SRC} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(EXPECT STREQUAL "sees")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${SRC}: a header this layer may include is not reachable from ${LAYER_ROOT}:\n${err}")
  endif()
elseif(EXPECT STREQUAL "blind")
  if(rc EQUAL 0)
    message(FATAL_ERROR "${SRC}: an include that crosses the layers resolved from ${LAYER_ROOT}: "
                        "the include root lets it through")
  endif()
  if(NOT err MATCHES "No such file or directory|file not found")
    message(FATAL_ERROR "${SRC} failed, but not because the header is out of reach:\n${err}")
  endif()
  message(STATUS "refused as it should be: ${err}")
else()
  message(FATAL_ERROR "EXPECT must be sees or blind")
endif()
