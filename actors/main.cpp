// main.cpp: the `lazarus` executable.
#include "actors/cli.hpp"

int main(int argc, char** argv) { return lz::actors::run_cli(argc, argv); }
