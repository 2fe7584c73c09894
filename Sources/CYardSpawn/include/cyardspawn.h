// Thin wrappers over the GNU extensions Swift's Glibc module does not import:
// a pipe created close-on-exec atomically (so a concurrent spawn cannot
// inherit it) and a working directory for posix_spawn.
#pragma once
#include <spawn.h>

int cyard_pipe_cloexec(int fds[2]);
int cyard_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);
int cyard_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);

// glibc's memmem (two-way search: linear in the haystack whatever the bytes),
// for the multipart parser.
#include <stddef.h>
const void *cyard_memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length);
