# Writes the bytes of IN as a C++ array definition into OUT, so that a file (the web chat page)
# is part of the binary and nothing is read at run time.
#   cmake -DIN=file -DOUT=file.inc -DNAME=identifier -P embed_file.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by cmake/embed_file.cmake; do not edit.\n"
     "inline constexpr unsigned char ${NAME}[] = {\n${bytes}0x00};\n"
     "inline constexpr size_t ${NAME}_size = ${size};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
