#include <cstdio>
int main(int argc, char** argv) { std::puts("moeforge"); return 0; }
