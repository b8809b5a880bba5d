// Paging through a listing that hands back `next_cursor`: the cursors of the pages seen so far, to go back.

export class Pager {
  constructor() {
    this.reset();
  }

  reset() {
    this.cursors = [""]; // the cursor that opened each page seen, the first page's being none
    this.next = null;
  }

  get cursor() {
    return this.cursors[this.cursors.length - 1];
  }

  get hasNewer() {
    return this.cursors.length > 1;
  }

  get hasOlder() {
    return Boolean(this.next);
  }

  // The current page answered with this next_cursor.
  seen(nextCursor) {
    this.next = nextCursor;
  }

  older() {
    if (!this.next) return false;
    this.cursors.push(this.next);
    this.next = null;
    return true;
  }

  newer() {
    if (this.cursors.length < 2) return false;
    this.cursors.pop();
    return true;
  }
}
