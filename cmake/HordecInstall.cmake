# HordecInstall.cmake — what `cmake --install` ships:
#
#   bin/hordec                          the daemon (static: it needs no libhordec at run time)
#   lib/libhordec.so.X.Y[.Z]            the SHIPPED layers (see CMakeLists.txt) with libei inside, linked
#                                       statically with its symbols hidden: only hc_* is exported
#   lib/libhordec.a                     the same objects, without libei (a static link names ei itself)
#   include/hordec/*.h                  the public headers
#   lib/cmake/hordec/                   find_package(hordec): hordec::hordec (shared), hordec::hordec_static
#   lib/pkgconfig/hordec.pc             pkg-config --cflags --libs hordec
#
# The same step installs the example's dependencies only: examples/ builds against an installed copy.
include(CMakePackageConfigHelpers)

get_property(HC_SHIPPED GLOBAL PROPERTY HC_SHIPPED_LAYERS)
set(HC_SHIPPED_OBJECTS "")
foreach(l ${HC_SHIPPED})
  list(APPEND HC_SHIPPED_OBJECTS $<TARGET_OBJECTS:hc_${l}>)
endforeach()

# 0.x releases promise no stable ABI between minor versions, so the soname carries the minor version.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(HC_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
else()
  set(HC_SOVERSION ${PROJECT_VERSION_MAJOR})
endif()

add_library(hordec_shared SHARED ${HC_SHIPPED_OBJECTS})
set_target_properties(hordec_shared PROPERTIES OUTPUT_NAME hordec EXPORT_NAME hordec
                                               VERSION ${PROJECT_VERSION} SOVERSION ${HC_SOVERSION})
target_include_directories(hordec_shared INTERFACE $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>
                                                   $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
# ei goes inside (PRIVATE: users never see it); --exclude-libs keeps its symbols out of the dynamic
# table, and --no-undefined makes a missing dependency a link error here rather than a user's problem.
# OpenSSL and Threads are named in the exported target, so find_package(hordec) finds them too.
target_link_libraries(hordec_shared PRIVATE erl_interface::ei m PUBLIC OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
target_link_options(hordec_shared PRIVATE -Wl,--exclude-libs,ALL -Wl,--no-undefined)

add_library(hordec_static STATIC ${HC_SHIPPED_OBJECTS})
set_target_properties(hordec_static PROPERTIES OUTPUT_NAME hordec EXPORT_NAME hordec_static)
target_include_directories(hordec_static INTERFACE $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>
                                                   $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
# A static archive cannot carry ei inside it: its users link the ei this library was built with.
target_link_libraries(hordec_static INTERFACE $<BUILD_INTERFACE:erl_interface::ei> $<INSTALL_INTERFACE:${EI_LIBRARY}>
                                              OpenSSL::SSL OpenSSL::Crypto Threads::Threads m)

install(TARGETS hordec RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS hordec_shared hordec_static EXPORT hordecTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/hordec DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(HC_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hordec)
install(EXPORT hordecTargets NAMESPACE hordec:: DESTINATION ${HC_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/hordecConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/hordecConfig.cmake INSTALL_DESTINATION ${HC_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/hordecConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/hordecConfig.cmake ${CMAKE_BINARY_DIR}/hordecConfigVersion.cmake
        DESTINATION ${HC_CMAKE_DIR})

# pkg-config: the prefix is found from the .pc file's own place, so the install tree can be moved.
file(RELATIVE_PATH HC_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" HC_PC_TO_PREFIX ${HC_PC_TO_PREFIX})
get_filename_component(HC_EI_LIBDIR ${EI_LIBRARY} DIRECTORY)
configure_file(${CMAKE_CURRENT_LIST_DIR}/hordec.pc.in ${CMAKE_BINARY_DIR}/hordec.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/hordec.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
