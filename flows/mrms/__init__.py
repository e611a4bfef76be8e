"""003 MRMS flows: dataset analysis and training of a learning history."""
