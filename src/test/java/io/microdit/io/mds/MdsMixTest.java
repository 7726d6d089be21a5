package io.microdit.io.mds;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class MdsMixTest {
    private static final int[] SIZES = {37, 5, 0, 101};

    private static List<MdsMix.Weight> none(int n) {
        return java.util.Collections.nCopies(n, MdsMix.Weight.NONE);
    }

    private static int[] sorted(int[] a) {
        int[] s = a.clone();
        Arrays.sort(s);
        return s;
    }

    @Test
    void unweightedStreamsGiveEverySampleOncePerEpoch() {
        MdsMix mix = new MdsMix(SIZES, none(SIZES.length), null, 7);
        assertEquals(143, mix.epochSize());
        for (long epoch = 0; epoch < 3; epoch++) {
            assertArrayEquals(IntStream.range(0, 143).toArray(), sorted(mix.epoch(epoch)));
        }
        assertEquals(3, mix.streamOf(42));
        assertEquals(42, mix.start(3));
    }

    @Test
    void twoRanksCoverEveryDrawnSampleExactlyOncePerEpoch() {
        MdsMix mix = new MdsMix(SIZES, List.of(MdsMix.Weight.NONE, new MdsMix.Weight(null, 2.6, null),
                MdsMix.Weight.NONE, new MdsMix.Weight(null, null, 40L)), null, 11);
        assertEquals(37 + 13 + 40, mix.epochSize());
        for (long epoch = 0; epoch < 4; epoch++) {
            int[] r0 = mix.rankSamples(epoch, 0, 2);
            int[] r1 = mix.rankSamples(epoch, 1, 2);
            assertEquals(45, r0.length);
            assertEquals(45, r1.length);
            int[] both = new int[90];
            System.arraycopy(r0, 0, both, 0, 45);
            System.arraycopy(r1, 0, both, 45, 45);
            assertArrayEquals(sorted(mix.epoch(epoch)), sorted(both));
            // three ranks: counts differ by at most one, and together they are the epoch
            int total = 0;
            for (int r = 0; r < 3; r++) {
                int n = mix.rankSamples(epoch, r, 3).length;
                assertTrue(n == 30, "rank " + r + ": " + n);
                total += n;
            }
            assertEquals(90, total);
        }
    }

    @Test
    void theShuffleIsAFunctionOfSeedAndEpoch() {
        MdsMix a = new MdsMix(SIZES, none(SIZES.length), null, 5);
        MdsMix b = new MdsMix(SIZES, none(SIZES.length), null, 5);
        MdsMix c = new MdsMix(SIZES, none(SIZES.length), null, 6);
        assertArrayEquals(a.epoch(3), b.epoch(3));
        assertFalse(Arrays.equals(a.epoch(3), a.epoch(4)));
        assertFalse(Arrays.equals(a.epoch(3), c.epoch(3)));
        assertFalse(Arrays.equals(a.epoch(0), a.composition(0)), "the epoch is shuffled");
    }

    @Test
    void repeatsGiveWholeCopiesAndAFreshDistinctRemainderEachEpoch() {
        MdsMix mix = new MdsMix(new int[] {10}, List.of(new MdsMix.Weight(null, 2.5, null)), null, 3);
        int[] e0 = sorted(mix.composition(0));
        int[] e1 = sorted(mix.composition(1));
        assertEquals(25, e0.length);
        for (int[] e : List.of(e0, e1)) {
            int[] counts = new int[10];
            for (int id : e) {
                counts[id]++;
            }
            assertEquals(5, Arrays.stream(counts).filter(k -> k == 3).count(), Arrays.toString(counts));
            assertEquals(5, Arrays.stream(counts).filter(k -> k == 2).count(), Arrays.toString(counts));
        }
        assertFalse(Arrays.equals(e0, e1), "the remainder is drawn per epoch");
    }

    @Test
    void proportionsSplitTheEpochSizeWithTheShortfallSpread() {
        MdsMix mix = new MdsMix(new int[] {10, 10, 10}, List.of(new MdsMix.Weight(1.0, null, null),
                new MdsMix.Weight(1.0, null, null), new MdsMix.Weight(1.0, null, null)), 32L, 1);
        assertEquals(32, mix.epochSize());
        long[] chosen = {mix.choose(0), mix.choose(1), mix.choose(2)};
        assertEquals(32, chosen[0] + chosen[1] + chosen[2]);
        for (long k : chosen) {
            assertTrue(k == 10 || k == 11, Arrays.toString(chosen));
        }
        MdsMix bySize = new MdsMix(new int[] {30, 10}, none(2), 8L, 1);
        assertEquals(6, bySize.choose(0));
        assertEquals(2, bySize.choose(1));
    }

    @Test
    void inconsistentWeightsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new MdsMix(new int[] {3, 3},
                List.of(new MdsMix.Weight(1.0, null, null), MdsMix.Weight.NONE), null, 0));
        assertThrows(IllegalArgumentException.class, () -> new MdsMix.Weight(null, 2.0, 3L));
        assertThrows(IllegalArgumentException.class, () -> new MdsMix(new int[] {3},
                List.of(new MdsMix.Weight(null, 2.0, null)), 5L, 0));
        assertThrows(IllegalArgumentException.class, () -> new MdsMix(new int[] {0},
                List.of(new MdsMix.Weight(null, null, 2L)), null, 0));
    }
}
