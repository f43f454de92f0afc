# `cmake --install build --prefix P`: what an installed Lumen is.
#
#   P/bin/lumen                     the host program
#   P/lib/lua/5.4/lumen.so          the module for a stock lua5.4 (Lua library embedded)
#   P/lib/liblumen.so.0.1.0         the core, the bindings and luaopen_lumen (soname liblumen.so.0.1)
#   P/include/lumen/                lumen.h, lumen_lua.h and the core's public headers
#   P/lib/pkgconfig/lumen.pc        `pkg-config --cflags --libs lumen`
#   P/lib/cmake/Lumen/              `find_package(Lumen)` -> Lumen::lumen
#   P/share/lumen/                  experiments, examples and docs
#   P/share/doc/lumen/              README.md and LICENSE
#
# With LUMEN_INSTALL_DEV (the default) the installed program and module link
# liblumen.so, so a C module built against the installed headers and the
# module it extends share one core (one allocator, one RNG, one thread pool).
# Without it (the rockspec) the program and module are the self-contained
# in-tree ones, and only they are installed. Every installed path is found
# relative to the binary ($ORIGIN rpaths, ${pcfiledir}, the CMake package's
# own folder), so `--prefix` may differ from CMAKE_INSTALL_PREFIX.
include(GNUInstallDirs)

# The version macros of include/lumen/lumen.h must be the project's.
file(READ ${CMAKE_CURRENT_SOURCE_DIR}/include/lumen/lumen.h LUMEN_H_TEXT)
foreach(part MAJOR MINOR PATCH)
  string(REGEX MATCH "#define LUMEN_VERSION_${part} ([0-9]+)" _m "${LUMEN_H_TEXT}")
  if(NOT CMAKE_MATCH_1 STREQUAL "${PROJECT_VERSION_${part}}")
    message(FATAL_ERROR "include/lumen/lumen.h: LUMEN_VERSION_${part} is '${CMAKE_MATCH_1}', "
                        "the project's version is ${PROJECT_VERSION}")
  endif()
endforeach()

# The soname: before 1.0 the ABI may change with every minor version.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(LUMEN_SOVERSION "0.${PROJECT_VERSION_MINOR}")
else()
  set(LUMEN_SOVERSION "${PROJECT_VERSION_MAJOR}")
endif()

# The core's public headers (installed beside lumen.h, which includes them).
set(LUMEN_PUBLIC_HEADERS
  core/lm_error.h core/lm_tensor.h core/lm_backend.h core/lm_autograd_meta.h core/lm_autograd.h
  core/lm_ops.h core/lm_nn.h core/lm_rng.h core/lm_alloc.h core/lm_cuda.h core/lm_safetensors.h
  core/lm_threads.h core/lm_host_device.h)

# Relative path from a (possibly relative) install folder to the library folder, for rpaths.
function(lumen_rpath_to_libdir out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${CMAKE_INSTALL_FULL_LIBDIR}" PARENT_SCOPE)
  else()
    file(RELATIVE_PATH rel "/prefix/${dir}" "/prefix/${CMAKE_INSTALL_LIBDIR}")
    set(${out} "$ORIGIN/${rel}" PARENT_SCOPE)
  endif()
endfunction()

if(LUMEN_INSTALL_DEV)
  # liblumen.so: the same objects as the static libraries, plus luaopen_lumen.
  add_library(lumen_shared SHARED bindings/lumen_module.c)
  target_link_libraries(lumen_shared PRIVATE lumen_core_objs lumen_bindings_objs PUBLIC PkgConfig::Lumen_LUA)
  target_include_directories(lumen_shared INTERFACE
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/core>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  set_target_properties(lumen_shared PROPERTIES OUTPUT_NAME lumen EXPORT_NAME lumen
    VERSION ${PROJECT_VERSION} SOVERSION ${LUMEN_SOVERSION})
  # never unmapped while the thread pool's workers run its code (lumen.so's reason too)
  target_link_options(lumen_shared PRIVATE "LINKER:-z,nodelete")

  # The installed program and module: the in-tree ones, linked to liblumen.so.
  add_executable(lumen_installed bindings/lumen_host.c)
  target_link_libraries(lumen_installed PRIVATE lumen_shared PkgConfig::Lumen_LUA)
  target_include_directories(lumen_installed PRIVATE bindings core)
  target_compile_definitions(lumen_installed PRIVATE LUMEN_VERSION="${PROJECT_VERSION}"
                             LUMEN_BUILD_KIND="${LUMEN_BUILD_KIND}")
  if(READLINE_LIBRARY AND READLINE_INCLUDE_DIR)
    target_compile_definitions(lumen_installed PRIVATE LUMEN_USE_READLINE=1)
    target_link_libraries(lumen_installed PRIVATE ${READLINE_LIBRARY})
  endif()
  lumen_rpath_to_libdir(bin_rpath "${LUMEN_INSTALL_BIN_DIR}")
  set_target_properties(lumen_installed PROPERTIES OUTPUT_NAME lumen
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/installed INSTALL_RPATH "${bin_rpath}")

  add_library(lumen_module_installed MODULE bindings/lumen_module.c)
  target_link_libraries(lumen_module_installed PRIVATE lumen_shared)
  target_link_options(lumen_module_installed PRIVATE "LINKER:-z,nodelete")
  target_include_directories(lumen_module_installed PRIVATE bindings core)
  lumen_rpath_to_libdir(cmod_rpath "${LUMEN_INSTALL_LUA_CMOD_DIR}")
  set_target_properties(lumen_module_installed PROPERTIES OUTPUT_NAME lumen PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/installed INSTALL_RPATH "${cmod_rpath}")
  set(LUMEN_INSTALLED_PROGRAM lumen_installed)
  set(LUMEN_INSTALLED_MODULE lumen_module_installed)
else()
  set(LUMEN_INSTALLED_PROGRAM lumen)
  set(LUMEN_INSTALLED_MODULE lumen_module)
endif()

install(TARGETS ${LUMEN_INSTALLED_PROGRAM} RUNTIME DESTINATION ${LUMEN_INSTALL_BIN_DIR})
install(TARGETS ${LUMEN_INSTALLED_MODULE} LIBRARY DESTINATION ${LUMEN_INSTALL_LUA_CMOD_DIR})

if(LUMEN_INSTALL_DEV)
  install(TARGETS lumen_shared EXPORT LumenTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(FILES include/lumen/lumen.h include/lumen/lumen_lua.h ${LUMEN_PUBLIC_HEADERS}
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/lumen)

  # pkg-config: relocatable (${pcfiledir}); the Lua headers and library come with lua5.4.
  file(RELATIVE_PATH pc_to_prefix "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
  string(REGEX REPLACE "/$" "" pc_to_prefix "${pc_to_prefix}")
  set(LUMEN_PC_PREFIX "\${pcfiledir}/${pc_to_prefix}")
  set(LUMEN_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
  set(LUMEN_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
  configure_file(cmake/lumen.pc.in ${CMAKE_CURRENT_BINARY_DIR}/lumen.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/lumen.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

  # CMake package: find_package(Lumen) -> Lumen::lumen
  include(CMakePackageConfigHelpers)
  set(LUMEN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Lumen)
  install(EXPORT LumenTargets NAMESPACE Lumen:: DESTINATION ${LUMEN_CMAKE_DIR})
  configure_package_config_file(cmake/LumenConfig.cmake.in
    ${CMAKE_CURRENT_BINARY_DIR}/LumenConfig.cmake INSTALL_DESTINATION ${LUMEN_CMAKE_DIR})
  write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/LumenConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/LumenConfig.cmake
    ${CMAKE_CURRENT_BINARY_DIR}/LumenConfigVersion.cmake DESTINATION ${LUMEN_CMAKE_DIR})

  # What the installed `lumen` finds beside itself (lm._share_dir): the experiments,
  # the examples and the docs.
  install(DIRECTORY experiments docs examples DESTINATION ${CMAKE_INSTALL_DATADIR}/lumen)
  install(FILES README.md LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
endif()
