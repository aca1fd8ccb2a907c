//! Reader for GGUF (llama.cpp) files, v2 and v3
