# ctest fixture fuzz.build: configures and builds the fuzz targets (fuzz/targets) with clang++
# in their own build tree, which also writes the seed corpus, and makes the directories the
# fuzz.<target> tests write to. Arguments (-D): SOURCE_DIR, BINARY_DIR, CXX_COMPILER,
# GENERATOR, MAKE_PROGRAM, TARGETS (comma-separated).
foreach(_var SOURCE_DIR BINARY_DIR CXX_COMPILER GENERATOR TARGETS)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "build-targets.cmake: -D${_var}=... is required")
  endif()
endforeach()

set(_configure ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${BINARY_DIR}" -G "${GENERATOR}"
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
if(MAKE_PROGRAM)
  list(APPEND _configure -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
execute_process(COMMAND ${_configure} RESULT_VARIABLE _result)
if(NOT _result EQUAL 0)
  message(FATAL_ERROR "configuring the fuzz targets failed (${_result})")
endif()

cmake_host_system_information(RESULT _jobs QUERY NUMBER_OF_LOGICAL_CORES)
execute_process(COMMAND ${CMAKE_COMMAND} --build "${BINARY_DIR}" -j ${_jobs} RESULT_VARIABLE _result)
if(NOT _result EQUAL 0)
  message(FATAL_ERROR "building the fuzz targets failed (${_result})")
endif()

string(REPLACE "," ";" _targets "${TARGETS}")
foreach(_t IN LISTS _targets)
  file(MAKE_DIRECTORY "${BINARY_DIR}/corpus/${_t}")
  if(NOT IS_DIRECTORY "${BINARY_DIR}/seeds/${_t}")
    message(FATAL_ERROR "the seed corpus of ${_t} was not written (${BINARY_DIR}/seeds/${_t})")
  endif()
endforeach()
file(MAKE_DIRECTORY "${BINARY_DIR}/artifacts")
