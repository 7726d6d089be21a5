package io.microdit.model;

/** Where the token mask is applied during training. */
public enum MaskingMode {
    /** The paper's deferred masking: the patch-mixer sees every token, the backbone only the kept ones. */
    DEFERRED,
    /** Mask before any block: the patch-mixer (if any) and the backbone see only the kept tokens. */
    NAIVE,
    /** No masking. */
    NONE
}
