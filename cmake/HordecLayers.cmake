# HordecLayers.cmake — one library per layer of c_src/, each compiled against its OWN include root, so an
# include that points up (or sideways) the layer diagram of DESIGN.md §2 is a compile error.
#
# A layer's include root, <build>/incroot/<layer>/, holds symlinks and nothing else:
#   <dir> -> c_src/<dir>        for the layer itself and every layer below it
#   hordec/<header>.h -> ...    one link per public header of include/hordec/ that belongs to one of those
#                               layers (private headers never use the public hordec/ prefix: the daemon's
#                               are daemon/*.h)
# Sources keep their include style ("crdt/map.h", "hordec/hc_term.h"): only what they can reach changes.
# Tests use hordec_core (see CMakeLists.txt), which sees everything.
#
#   hc_public_headers(<layer> <file>...)    which layer a public header belongs to
#   hc_layer(<name> DIR <dir> [DEPS <layer>...] [EXCLUDE <file>...] [OPTIONAL] [SHIPPED] [LIBS <lib>...])
#       declares a layer (after its DEPS): a static library hc_<name> of <dir>/*.c (EXCLUDE'd files left
#       out), linked to hc_<dep> for each dep; OPTIONAL: the layer may not exist yet (no directory: it is
#       skipped, and deps on it are ignored); SHIPPED: its objects go into the installed libhordec.
#   hc_layers_finish()                      after the last hc_layer: checks every public header and every
#                                           directory of c_src/ has a layer, and builds the include roots.
# Source and header lists are globbed with CONFIGURE_DEPENDS: a new file re-runs the configure step.

set(HC_INCROOT ${CMAKE_BINARY_DIR}/incroot)
set_property(GLOBAL PROPERTY HC_LAYERS "")
set_property(GLOBAL PROPERTY HC_SHIPPED_LAYERS "")

function(hc_public_headers layer)
  foreach(h ${ARGN})
    set_property(GLOBAL PROPERTY HC_HEADER_LAYER_${h} ${layer})
  endforeach()
endfunction()

function(hc_layer name)
  cmake_parse_arguments(L "OPTIONAL;SHIPPED" "DIR" "DEPS;EXCLUDE;LIBS" ${ARGN})
  set(dir ${CMAKE_SOURCE_DIR}/${L_DIR})
  # Globbed even when the directory is missing, so creating it later re-runs the configure step.
  file(GLOB srcs CONFIGURE_DEPENDS ${dir}/*.c)
  set_property(GLOBAL APPEND PROPERTY HC_DECLARED_DIRS ${L_DIR})
  if(NOT IS_DIRECTORY ${dir})
    if(L_OPTIONAL)
      set_property(GLOBAL PROPERTY HC_LAYER_${name}_ABSENT TRUE)
      return()
    endif()
    message(FATAL_ERROR "layer ${name}: directory ${L_DIR} does not exist")
  endif()
  foreach(x ${L_EXCLUDE})
    list(FILTER srcs EXCLUDE REGEX "/${x}$")
  endforeach()

  # What the layer sees: itself and, transitively, every layer below it that exists.
  set(sees ${name})
  set(deps "")
  foreach(d ${L_DEPS})
    get_property(dsees GLOBAL PROPERTY HC_LAYER_${d}_SEES)
    get_property(declared GLOBAL PROPERTY HC_LAYER_${d}_DIR SET)
    get_property(absent GLOBAL PROPERTY HC_LAYER_${d}_ABSENT)
    if(absent)
      continue() # an OPTIONAL layer that does not exist yet
    elseif(NOT declared)
      message(FATAL_ERROR "layer ${name}: dependency ${d} is not declared (yet): declare layers bottom-up")
    endif()
    list(APPEND deps hc_${d})
    list(APPEND sees ${dsees})
  endforeach()
  list(REMOVE_DUPLICATES sees)
  set_property(GLOBAL PROPERTY HC_LAYER_${name}_DIR ${L_DIR})
  set_property(GLOBAL PROPERTY HC_LAYER_${name}_SEES ${sees})
  set_property(GLOBAL APPEND PROPERTY HC_LAYERS ${name})

  if(srcs)
    add_library(hc_${name} STATIC ${srcs})
    target_include_directories(hc_${name} PRIVATE ${HC_INCROOT}/${name})
    target_compile_options(hc_${name} PRIVATE ${HORDEC_WARNINGS})
    target_link_libraries(hc_${name} PUBLIC ${deps} ${L_LIBS})
    if(L_SHIPPED)
      set_property(GLOBAL APPEND PROPERTY HC_SHIPPED_LAYERS ${name})
    endif()
  else()
    # Headers only (or not written yet): nothing to compile, but its users still link what it needs.
    add_library(hc_${name} INTERFACE)
    target_link_libraries(hc_${name} INTERFACE ${deps} ${L_LIBS})
  endif()
endfunction()

# The include root of the layer `name`.
function(hc_make_incroot name public_headers)
  set(root ${HC_INCROOT}/${name})
  file(MAKE_DIRECTORY ${root}/hordec)
  get_property(sees GLOBAL PROPERTY HC_LAYER_${name}_SEES)
  foreach(s ${sees})
    get_property(sdir GLOBAL PROPERTY HC_LAYER_${s}_DIR)
    get_filename_component(base ${sdir} NAME)
    file(CREATE_LINK ${CMAKE_SOURCE_DIR}/${sdir} ${root}/${base} SYMBOLIC)
  endforeach()
  foreach(h ${public_headers})
    get_filename_component(hn ${h} NAME)
    get_property(hl GLOBAL PROPERTY HC_HEADER_LAYER_${hn})
    if(hl IN_LIST sees)
      file(CREATE_LINK ${h} ${root}/hordec/${hn} SYMBOLIC)
    endif()
  endforeach()
endfunction()

function(hc_layers_finish)
  # Every public header must belong to a layer: otherwise no layer could include it, and the
  # mistake would surface later as a puzzling "file not found".
  file(GLOB public_headers CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/include/hordec/*.h)
  foreach(h ${public_headers})
    get_filename_component(hn ${h} NAME)
    get_property(known GLOBAL PROPERTY HC_HEADER_LAYER_${hn} SET)
    if(NOT known)
      message(FATAL_ERROR "include/hordec/${hn} belongs to no layer: add it to an hc_public_headers() line "
                          "in CMakeLists.txt (the layer whose code implements it)")
    endif()
  endforeach()
  # Every directory of c_src/ must be a layer, so a new one cannot slip in unchecked.
  get_property(declared GLOBAL PROPERTY HC_DECLARED_DIRS)
  file(GLOB entries CONFIGURE_DEPENDS LIST_DIRECTORIES true ${CMAKE_SOURCE_DIR}/c_src/*)
  foreach(e ${entries})
    if(IS_DIRECTORY ${e})
      file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR} ${e})
      if(NOT rel IN_LIST declared)
        message(FATAL_ERROR "${rel}/ is no layer: declare it with hc_layer() in CMakeLists.txt, with the "
                            "layers it may include (DESIGN.md §2)")
      endif()
    endif()
  endforeach()
  # Rebuilt from scratch at every configure so a removed header or layer leaves no stale link.
  # (REMOVE_RECURSE deletes the symlinks themselves, never what they point to.)
  file(REMOVE_RECURSE ${HC_INCROOT})
  get_property(layers GLOBAL PROPERTY HC_LAYERS)
  foreach(l ${layers})
    hc_make_incroot(${l} "${public_headers}")
  endforeach()
endfunction()
