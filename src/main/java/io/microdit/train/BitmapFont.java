package io.microdit.train;

import java.util.HashMap;
import java.util.Map;

/**
 * A 5×7 pixel font for the labels of {@link LossCurvePlot}: digits, ASCII letters and the punctuation numbers and
 * short titles need. Drawn from its own bitmaps because the engine must not depend on java.desktop (AWT fonts).
 * Two rows below the body hold the descenders of g, j, p, q, y and the comma, without which "g" reads as "9".
 * A character outside the set is drawn as a hollow box, so a missing glyph is visible rather than silently dropped.
 */
final class BitmapFont {
    static final int GLYPH_WIDTH = 5;
    /** Rows from the top of capitals and digits to the baseline; vertical centring uses this. */
    static final int GLYPH_HEIGHT = 7;
    /** Rows a line of text occupies, descenders included. */
    static final int LINE_HEIGHT = GLYPH_HEIGHT + 2;
    /** Horizontal pitch: a glyph plus one column of spacing. */
    static final int ADVANCE = GLYPH_WIDTH + 1;

    private static final Map<Character, String[]> GLYPHS = new HashMap<>();
    private static final String[] MISSING = {"#####", "#   #", "#   #", "#   #", "#   #", "#   #", "#####"};

    private BitmapFont() {
    }

    /** Whether the glyph of {@code character} has its pixel at column {@code x} (0..4), row {@code y} (0..8) set. */
    static boolean isSet(char character, int x, int y) {
        String[] rows = GLYPHS.getOrDefault(character, MISSING);
        return y < rows.length && rows[y].charAt(x) == '#';
    }

    /** Width in unscaled pixels of {@code text} drawn in one line, without trailing spacing. */
    static int width(String text) {
        return text.isEmpty() ? 0 : text.length() * ADVANCE - 1;
    }

    private static void glyph(char character, String... rows) {
        GLYPHS.put(character, rows);
    }

    static {
        glyph(' ', "     ", "     ", "     ", "     ", "     ", "     ", "     ");
        glyph('0', " ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### ");
        glyph('1', "  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ");
        glyph('2', " ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####");
        glyph('3', "#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### ");
        glyph('4', "   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # ");
        glyph('5', "#####", "#    ", "#### ", "    #", "    #", "#   #", " ### ");
        glyph('6', "  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### ");
        glyph('7', "#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   ");
        glyph('8', " ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### ");
        glyph('9', " ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  ");
        glyph('.', "     ", "     ", "     ", "     ", "     ", " ##  ", " ##  ");
        glyph(',', "     ", "     ", "     ", "     ", "     ", " ##  ", " ##  ", "  #  ", " #   ");
        glyph(':', "     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     ");
        glyph('-', "     ", "     ", "     ", " ### ", "     ", "     ", "     ");
        glyph('+', "     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     ");
        glyph('=', "     ", "     ", "#####", "     ", "#####", "     ", "     ");
        glyph('/', "     ", "    #", "   # ", "  #  ", " #   ", "#    ", "     ");
        glyph('%', "##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##");
        glyph('<', "   # ", "  #  ", " #   ", "#    ", " #   ", "  #  ", "   # ");
        glyph('>', " #   ", "  #  ", "   # ", "    #", "   # ", "  #  ", " #   ");
        glyph('_', "     ", "     ", "     ", "     ", "     ", "     ", "#####");
        glyph('(', "   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # ");
        glyph(')', " #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   ");
        glyph('a', "     ", "     ", " ### ", "    #", " ####", "#   #", " ####");
        glyph('b', "#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#### ");
        glyph('c', "     ", "     ", " ### ", "#    ", "#    ", "#   #", " ### ");
        glyph('d', "    #", "    #", " ## #", "#  ##", "#   #", "#   #", " ####");
        glyph('e', "     ", "     ", " ### ", "#   #", "#####", "#    ", " ### ");
        glyph('f', "  ## ", " #  #", " #   ", "###  ", " #   ", " #   ", " #   ");
        glyph('g', "     ", "     ", " ####", "#   #", "#   #", "#   #", " ####", "    #", " ### ");
        glyph('h', "#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#   #");
        glyph('i', "  #  ", "     ", " ##  ", "  #  ", "  #  ", "  #  ", " ### ");
        glyph('j', "   # ", "     ", "  ## ", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  ");
        glyph('k', "#    ", "#    ", "#  # ", "# #  ", "##   ", "# #  ", "#  # ");
        glyph('l', " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ");
        glyph('m', "     ", "     ", "## # ", "# # #", "# # #", "#   #", "#   #");
        glyph('n', "     ", "     ", "# ## ", "##  #", "#   #", "#   #", "#   #");
        glyph('o', "     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### ");
        glyph('p', "     ", "     ", "#### ", "#   #", "#   #", "#   #", "#### ", "#    ", "#    ");
        glyph('q', "     ", "     ", " ####", "#   #", "#   #", "#   #", " ####", "    #", "    #");
        glyph('r', "     ", "     ", "# ## ", "##  #", "#    ", "#    ", "#    ");
        glyph('s', "     ", "     ", " ### ", "#    ", " ### ", "    #", "#### ");
        glyph('t', " #   ", " #   ", "###  ", " #   ", " #   ", " #  #", "  ## ");
        glyph('u', "     ", "     ", "#   #", "#   #", "#   #", "#  ##", " ## #");
        glyph('v', "     ", "     ", "#   #", "#   #", "#   #", " # # ", "  #  ");
        glyph('w', "     ", "     ", "#   #", "#   #", "# # #", "# # #", " # # ");
        glyph('x', "     ", "     ", "#   #", " # # ", "  #  ", " # # ", "#   #");
        glyph('y', "     ", "     ", "#   #", "#   #", "#   #", "#   #", " ####", "    #", " ### ");
        glyph('z', "     ", "     ", "#####", "   # ", "  #  ", " #   ", "#####");
        glyph('A', " ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #");
        glyph('B', "#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### ");
        glyph('C', " ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### ");
        glyph('D', "#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### ");
        glyph('E', "#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####");
        glyph('F', "#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    ");
        glyph('G', " ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####");
        glyph('H', "#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #");
        glyph('I', " ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ");
        glyph('J', "  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  ");
        glyph('K', "#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #");
        glyph('L', "#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####");
        glyph('M', "#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #");
        glyph('N', "#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #");
        glyph('O', " ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### ");
        glyph('P', "#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    ");
        glyph('Q', " ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #");
        glyph('R', "#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #");
        glyph('S', " ####", "#    ", "#    ", " ### ", "    #", "    #", "#### ");
        glyph('T', "#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ");
        glyph('U', "#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### ");
        glyph('V', "#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  ");
        glyph('W', "#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # ");
        glyph('X', "#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #");
        glyph('Y', "#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  ");
        glyph('Z', "#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####");
    }
}
